//! Volumes and snapshots: `CreateVolume`, `CreateSnapshot`, `DetachVolume`
//! and the create-volume permission checks of snapshots other accounts own.

use super::*;

impl<'a> Mapper<'a> {
    /// Adds a launch / create-volume permission check when the owner is
    /// another account or unknown.
    pub(super) fn permission_check(
        &mut self,
        id: &str,
        known: Option<&Arc<Resource>>,
        kind: PermissionKind,
    ) {
        if known.is_some_and(|r| r.account == self.caller) {
            return;
        }
        self.call.permission_checks.push(PermissionCheck {
            resource_id: id.to_owned(),
            kind,
            owner_account: known.map(|r| r.account.clone()),
            resource: known.cloned(),
        });
    }

    /// Keys of a new volume from request parameters (validated).
    #[expect(
        clippy::too_many_arguments,
        reason = "one argument per EBS parameter, all validated here"
    )]
    pub(super) fn volume_context(
        &self,
        pre: &str,
        size: Option<&str>,
        volume_type: Option<&str>,
        encrypted: Option<&str>,
        iops: Option<&str>,
        throughput: Option<&str>,
        kms: Option<&str>,
        snapshot: Option<&str>,
    ) -> Result<Vec<(String, ContextValue)>, MappingError> {
        let snap = match snapshot {
            Some(s) => {
                check_id("snapshot", &format!("{pre}.SnapshotId"), s)?;
                self.inventory.get(s)
            }
            None => None,
        };
        let mut out = Vec::new();
        let size = match size {
            Some(v) => Some(parse_number(&format!("{pre}.VolumeSize"), v)?.to_string()),
            None => snap
                .and_then(|s| s.attributes.volume_size())
                .map(|n| n.to_string()),
        };
        if let Some(s) = size {
            out.push((keys::EC2_VOLUME_SIZE.into(), one(s)));
        }
        out.push((
            keys::EC2_VOLUME_TYPE.into(),
            one(volume_type.unwrap_or("gp2")),
        ));
        let enc = match encrypted {
            Some(v) => parse_bool(&format!("{pre}.Encrypted"), v)?,
            None => snap.and_then(|s| s.attributes.encrypted()).unwrap_or(false),
        };
        out.push((keys::EC2_ENCRYPTED.into(), one(enc.to_string())));
        if let Some(v) = iops {
            let n = parse_number(&format!("{pre}.Iops"), v)?;
            out.push((keys::EC2_VOLUME_IOPS.into(), one(n.to_string())));
        }
        if let Some(v) = throughput {
            let n = parse_number(&format!("{pre}.Throughput"), v)?;
            out.push((keys::EC2_VOLUME_THROUGHPUT.into(), one(n.to_string())));
        }
        if let Some(k) = kms {
            out.push((keys::EC2_KMS_KEY_ID.into(), one(k)));
        }
        if let Some(s) = snapshot {
            out.push((
                keys::EC2_PARENT_SNAPSHOT.into(),
                one(self.arn_of("snapshot", "", s)),
            ));
        }
        Ok(out)
    }

    // ---- volumes and snapshots ------------------------------------------

    pub(super) fn create_volume(&mut self) -> Result<(), MappingError> {
        let p = self.params;
        let snapshot = p.get("SnapshotId");
        let mut vol = Self::new_resource("volume");
        vol.extra = self.volume_context(
            "",
            p.get("Size"),
            p.get("VolumeType"),
            p.get("Encrypted"),
            p.get("Iops"),
            p.get("Throughput"),
            p.get("KmsKeyId"),
            snapshot,
        )?;
        // Parameter names are top-level here (`Size`, not `.VolumeSize`).
        if let Some(az) = p.get("AvailabilityZone") {
            vol.extra
                .push((keys::EC2_AVAILABILITY_ZONE.into(), one(az)));
        }
        self.authorize(vol);
        if let Some(s) = snapshot {
            let t = self.existing("snapshot", "SnapshotId", s)?;
            self.permission_check(s, t.known, PermissionKind::CreateVolume);
            self.authorize(t);
        }
        Ok(())
    }

    pub(super) fn create_snapshot(&mut self) -> Result<(), MappingError> {
        let vol_id = self
            .params
            .get("VolumeId")
            .ok_or_else(|| MappingError::MissingParameter("VolumeId".into()))?;
        let vol = self.existing("volume", "VolumeId", vol_id)?;
        let mut snap = Self::new_resource("snapshot");
        snap.extra.push((
            keys::EC2_PARENT_VOLUME.into(),
            one(self.arn_of_existing("volume", vol_id)),
        ));
        if let Some(n) = vol.known.and_then(|v| v.attributes.volume_size()) {
            snap.extra
                .push((keys::EC2_VOLUME_SIZE.into(), one(n.to_string())));
        }
        self.authorize(snap);
        self.authorize(vol);
        Ok(())
    }

    pub(super) fn detach_volume(&mut self) -> Result<(), MappingError> {
        let vol_id = self
            .params
            .get("VolumeId")
            .ok_or_else(|| MappingError::MissingParameter("VolumeId".into()))?;
        let vol = self.existing("volume", "VolumeId", vol_id)?;
        let instance = match self.params.get("InstanceId") {
            Some(i) => Some(i.to_owned()),
            None => vol
                .known
                .and_then(|v| v.attributes.attached_to().map(str::to_owned)),
        };
        self.authorize(vol);
        if let Some(i) = instance {
            let t = self.existing("instance", "InstanceId", &i)?;
            self.authorize(t);
        }
        Ok(())
    }
}
