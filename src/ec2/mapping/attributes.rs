//! Tags (`CreateTags`, `DeleteTags`) and the permission attributes of
//! images and snapshots (`ModifyImageAttribute`,
//! `ModifySnapshotAttribute`) with the grant changes they make.

use super::*;

impl<'a> Mapper<'a> {
    // ---- tags --------------------------------------------------------------

    pub(super) fn tags(&mut self) -> Result<(), MappingError> {
        let ids = self.params.list("ResourceId")?;
        if ids.is_empty() {
            return Err(MappingError::MissingParameter("ResourceId.1".into()));
        }
        let tags = self.params.tags("Tag")?;
        let creating = self.def.name == "CreateTags";
        if creating && tags.is_empty() {
            return Err(MappingError::MissingParameter("Tag.1.Key".into()));
        }
        let mut seen_keys: Vec<&str> = Vec::new();
        for (i, (k, _)) in tags.iter().enumerate() {
            if seen_keys.contains(&k.as_str()) {
                return Err(MappingError::InvalidParameterValue {
                    name: format!("Tag.{}.Key", i + 1),
                    reason: format!("duplicate tag key '{k}'"),
                });
            }
            seen_keys.push(k);
        }
        // Each resource, as resolved from its ResourceId.N (its type from
        // the id's prefix), once.
        let targets: Vec<Target<'a>> = self
            .resolved
            .iter()
            .filter(|t| {
                t.param
                    .as_deref()
                    .is_some_and(|n| catalog::param_pattern(n).eq_ignore_ascii_case("ResourceId.N"))
            })
            .cloned()
            .collect();
        for t in targets {
            let row = self.def.resource(t.resource_type);
            let mut auth = self.build(self.def, t, false);
            let mut keys = Keys {
                action: self.def,
                row,
                ctx: auth.context,
            };
            // CreateTags: each tag is requested with its value (missing = "").
            // DeleteTags: keys are requested; values only when given.
            keys.request_tags(tags.iter().map(|(k, v)| {
                let v = match (creating, v) {
                    (true, None) => Some(""),
                    (_, v) => v.as_deref(),
                };
                (k.as_str(), v)
            }));
            auth.context = keys.ctx;
            self.call.authorizations.push(auth);
        }
        Ok(())
    }

    // ---- permission attributes ------------------------------------------

    pub(super) fn modify_image_attribute(&mut self) -> Result<(), MappingError> {
        let id = self
            .params
            .get("ImageId")
            .ok_or_else(|| MappingError::MissingParameter("ImageId".into()))?;
        let mut t = self.existing("image", "ImageId", id)?;
        let (add, remove) = self.grants("LaunchPermission", "launchPermission", true)?;
        if let Some(attr) =
            self.attribute_name("launchPermission", !(add.is_empty() && remove.is_empty()))
        {
            t.extra.push((keys::EC2_ATTRIBUTE.into(), one(attr)));
        }
        self.authorize(t);
        self.push_grants(id, add, remove);
        Ok(())
    }

    pub(super) fn modify_snapshot_attribute(&mut self) -> Result<(), MappingError> {
        let id = self
            .params
            .get("SnapshotId")
            .ok_or_else(|| MappingError::MissingParameter("SnapshotId".into()))?;
        let mut t = self.existing("snapshot", "SnapshotId", id)?;
        let (add, remove) =
            self.grants("CreateVolumePermission", "createVolumePermission", false)?;
        if let Some(attr) = self.attribute_name(
            "createVolumePermission",
            !(add.is_empty() && remove.is_empty()),
        ) {
            t.extra.push((keys::EC2_ATTRIBUTE.into(), one(attr)));
        }
        for (key, list) in [("Add", &add), ("Remove", &remove)] {
            let users: Vec<String> = list
                .iter()
                .filter_map(|g| match g {
                    Grant::Account(a) => Some(a.clone()),
                    _ => None,
                })
                .collect();
            let groups: Vec<String> = list
                .iter()
                .filter(|g| matches!(g, Grant::All))
                .map(|_| "all".to_owned())
                .collect();
            if let Some(v) = many(users) {
                t.extra.push((format!("ec2:{key}/userId"), v));
            }
            if let Some(v) = many(groups) {
                t.extra.push((format!("ec2:{key}/group"), v));
            }
        }
        self.authorize(t);
        self.push_grants(id, add, remove);
        Ok(())
    }

    /// The attribute being modified: `Attribute=…`, or `implied` when the
    /// structured permission parameters are used.
    fn attribute_name(&self, implied: &str, has_grants: bool) -> Option<String> {
        match self.params.get("Attribute") {
            Some(a) => Some(a.to_owned()),
            None => has_grants.then(|| implied.to_owned()),
        }
    }

    fn push_grants(&mut self, id: &str, add: Vec<Grant>, remove: Vec<Grant>) {
        if add.is_empty() && remove.is_empty() {
            return;
        }
        self.call.grant_updates.push(Change::Grants {
            id: id.to_owned(),
            add,
            remove,
        });
    }

    /// Reads permission changes: the structured form (`<structured>.Add.N.*`,
    /// `.Remove.N.*`) or the older one (`OperationType` with `UserId.N`,
    /// `UserGroup.N` / `GroupName.N`, and for images `OrganizationArn.N`,
    /// `OrganizationalUnitArn.N`).
    pub(super) fn grants(
        &self,
        structured: &str,
        attribute: &str,
        image: bool,
    ) -> Result<(Vec<Grant>, Vec<Grant>), MappingError> {
        let p = self.params;
        let group_param = "UserGroup";
        let mut old_params = vec!["UserId", group_param];
        if image {
            old_params.extend(["OrganizationArn", "OrganizationalUnitArn"]);
        }
        let old_form = old_params.iter().any(|n| p.has_prefix(n));
        let new_form = p.has_prefix(structured);
        if let Some(a) = p.get("Attribute")
            && (old_form || new_form)
            && !a.eq_ignore_ascii_case(attribute)
        {
            return Err(MappingError::InvalidParameterCombination(format!(
                "Attribute={a} cannot change {attribute}"
            )));
        }
        if old_form && new_form {
            return Err(MappingError::InvalidParameterCombination(format!(
                "{structured} cannot be combined with OperationType and {}",
                old_params.join(".N / ")
            )));
        }
        let mut add = Vec::new();
        let mut remove = Vec::new();
        if new_form {
            for (op, out) in [("Add", &mut add), ("Remove", &mut remove)] {
                let list = format!("{structured}.{op}");
                for i in p.indices(&list)? {
                    let pre = format!("{list}.{i}");
                    let before = out.len();
                    if let Some(u) = p.get(&format!("{pre}.UserId")) {
                        out.push(account_grant(&format!("{pre}.UserId"), u)?);
                    }
                    if let Some(g) = p.get(&format!("{pre}.Group")) {
                        out.push(group_grant(&format!("{pre}.Group"), g)?);
                    }
                    if image {
                        if let Some(a) = p.get(&format!("{pre}.OrganizationArn")) {
                            out.push(org_grant(&format!("{pre}.OrganizationArn"), a, false)?);
                        }
                        if let Some(a) = p.get(&format!("{pre}.OrganizationalUnitArn")) {
                            out.push(org_grant(&format!("{pre}.OrganizationalUnitArn"), a, true)?);
                        }
                    }
                    if out.len() == before {
                        return Err(MappingError::InvalidParameterValue {
                            name: pre,
                            reason: "names no account, group or organization".into(),
                        });
                    }
                }
            }
        } else if old_form {
            let op = p
                .get("OperationType")
                .ok_or_else(|| MappingError::MissingParameter("OperationType".into()))?;
            let out = if op.eq_ignore_ascii_case("add") {
                &mut add
            } else if op.eq_ignore_ascii_case("remove") {
                &mut remove
            } else {
                return Err(MappingError::InvalidParameterValue {
                    name: "OperationType".into(),
                    reason: format!("'{op}' is neither add nor remove"),
                });
            };
            for (i, u) in p.list("UserId")?.into_iter().enumerate() {
                out.push(account_grant(&format!("UserId.{}", i + 1), u)?);
            }
            for (i, g) in p.list(group_param)?.into_iter().enumerate() {
                out.push(group_grant(&format!("{group_param}.{}", i + 1), g)?);
            }
            if image {
                for (i, a) in p.list("OrganizationArn")?.into_iter().enumerate() {
                    out.push(org_grant(&format!("OrganizationArn.{}", i + 1), a, false)?);
                }
                for (i, a) in p.list("OrganizationalUnitArn")?.into_iter().enumerate() {
                    out.push(org_grant(
                        &format!("OrganizationalUnitArn.{}", i + 1),
                        a,
                        true,
                    )?);
                }
            }
        }
        Ok((add, remove))
    }
}
