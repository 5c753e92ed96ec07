//! `RunInstances`: the instance, its image, network interfaces, subnets,
//! security groups, volumes, key pair, launch template and instance
//! profile, each authorized as EC2 authorizes a launch.

use super::*;

impl<'a> Mapper<'a> {
    pub(super) fn run_instances(&mut self) -> Result<(), MappingError> {
        let p = self.params;
        // The launch template by id or by name (resolved to its id).
        let lt_id = self
            .resolved
            .iter()
            .find(|t| t.resource_type == "launch-template")
            .and_then(|t| t.id.clone());
        let lt_id = lt_id.as_deref();
        let image_id = match (p.get("ImageId"), lt_id) {
            (Some(i), _) => i,
            (None, Some(_)) => {
                return Err(MappingError::Unsupported(
                    "a launch template without an explicit ImageId (the template's image is unknown)"
                        .into(),
                ));
            }
            (None, None) => return Err(MappingError::MissingParameter("ImageId".into())),
        };
        let lt_arn = match lt_id {
            Some(id) => {
                check_id("launch-template", "LaunchTemplate.LaunchTemplateId", id)?;
                Some(self.arn_of_existing("launch-template", id))
            }
            None => None,
        };
        let with_lt = |t: &mut Target<'_>| {
            if let Some(a) = &lt_arn {
                t.extra.push((
                    keys::EC2_LAUNCH_TEMPLATE.into(),
                    ContextValue::One(a.clone()),
                ));
            }
        };

        // Network interfaces given explicitly.
        let mut enis_existing: Vec<String> = Vec::new();
        let mut enis_new: Vec<Vec<(String, ContextValue)>> = Vec::new();
        let mut subnet_ids: Vec<String> = Vec::new();
        let mut group_ids: Vec<String> = Vec::new();
        for i in p.indices("NetworkInterface")? {
            let pre = format!("NetworkInterface.{i}");
            if let Some(id) = p.get(&format!("{pre}.NetworkInterfaceId")) {
                check_id(
                    "network-interface",
                    &format!("{pre}.NetworkInterfaceId"),
                    id,
                )?;
                enis_existing.push(id.to_owned());
                continue;
            }
            let mut extra = Vec::new();
            if let Some(s) = p.get(&format!("{pre}.SubnetId")) {
                check_id("subnet", &format!("{pre}.SubnetId"), s)?;
                subnet_ids.push(s.to_owned());
                extra.extend(self.subnet_context(s));
            }
            if let Some(v) = p.get(&format!("{pre}.AssociatePublicIpAddress")) {
                let b = parse_bool(&format!("{pre}.AssociatePublicIpAddress"), v)?;
                extra.push((
                    keys::EC2_ASSOCIATE_PUBLIC_IP_ADDRESS.into(),
                    one(b.to_string()),
                ));
            }
            for g in p.list(&format!("{pre}.SecurityGroupId"))? {
                group_ids.push(g.to_owned());
            }
            enis_new.push(extra);
        }
        if let Some(s) = p.get("SubnetId") {
            if !enis_existing.is_empty() || !enis_new.is_empty() {
                return Err(MappingError::InvalidParameterCombination(
                    "SubnetId cannot be given with NetworkInterface.N".into(),
                ));
            }
            check_id("subnet", "SubnetId", s)?;
            subnet_ids.push(s.to_owned());
        }
        for g in p.list("SecurityGroupId")? {
            group_ids.push(g.to_owned());
        }
        // Security groups by name, resolved to their ids.
        for t in &self.resolved {
            if t.param
                .as_deref()
                .is_some_and(|n| catalog::param_pattern(n).eq_ignore_ascii_case("SecurityGroup.N"))
                && let Some(id) = &t.id
            {
                group_ids.push(id.clone());
            }
        }
        p.list("SecurityGroup")?;
        // Interfaces that exist bring their subnet and groups.
        for id in &enis_existing {
            if let Some(eni) = self.lookup("network-interface", id, self.region) {
                subnet_ids.extend(eni.attributes.subnet_id().map(str::to_owned));
                group_ids.extend(eni.attributes.groups().iter().cloned());
            }
        }
        // No subnet: EC2 launches into a default subnet of the Region (of
        // the requested zone) and picks which, so each must be allowed.
        let defaulted = subnet_ids.is_empty();
        if defaulted {
            let zone = p.get("Placement.AvailabilityZone");
            subnet_ids = self
                .inventory
                .default_subnets(self.caller, self.region)
                .filter(|s| zone.is_none() || s.attributes.availability_zone() == zone)
                .map(|s| s.id.clone())
                .collect();
            subnet_ids.sort_unstable();
            if subnet_ids.is_empty() {
                return Err(MappingError::Unsupported(
                    "RunInstances without SubnetId: the inventory holds no default subnet \
                     for the caller here, so iamgate cannot tell which subnet it uses"
                        .into(),
                ));
            }
        }

        // The instance.
        let image = self.inventory.get(image_id);
        let mut inst = Self::new_resource("instance");
        let it = p.get("InstanceType").unwrap_or("m1.small");
        inst.extra.push((keys::EC2_INSTANCE_TYPE.into(), one(it)));
        // The zone: requested, else the subnet's (when there is one choice).
        let az = p
            .get("Placement.AvailabilityZone")
            .map(str::to_owned)
            .or_else(|| match subnet_ids.as_slice() {
                [s] => self
                    .inventory
                    .get(s)
                    .and_then(|s| s.attributes.availability_zone().map(str::to_owned)),
                _ => None,
            });
        if let Some(az) = &az {
            inst.extra
                .push((keys::EC2_AVAILABILITY_ZONE.into(), one(az)));
        }
        inst.extra.push((
            keys::EC2_TENANCY.into(),
            one(p.get("Placement.Tenancy").unwrap_or("default")),
        ));
        let ebs_opt = match p.get("EbsOptimized") {
            Some(v) => parse_bool("EbsOptimized", v)?,
            None => false,
        };
        inst.extra
            .push((keys::EC2_EBS_OPTIMIZED.into(), one(ebs_opt.to_string())));
        let market = p
            .get("InstanceMarketOptions.MarketType")
            .unwrap_or("on-demand");
        inst.extra
            .push((keys::EC2_INSTANCE_MARKET_TYPE.into(), one(market)));
        if let Some(profile) = &self.profile {
            inst.extra
                .push((keys::EC2_INSTANCE_PROFILE.into(), one(profile.arn.clone())));
        }
        for (param, key) in [
            ("MetadataOptions.HttpTokens", keys::EC2_METADATA_HTTP_TOKENS),
            (
                "MetadataOptions.HttpEndpoint",
                keys::EC2_METADATA_HTTP_ENDPOINT,
            ),
            (
                "MetadataOptions.HttpPutResponseHopLimit",
                keys::EC2_METADATA_HTTP_PUT_RESPONSE_HOP_LIMIT,
            ),
            (
                "MetadataOptions.InstanceMetadataTags",
                keys::EC2_INSTANCE_METADATA_TAGS,
            ),
        ] {
            if let Some(v) = p.get(param) {
                inst.extra.push((key.into(), one(v)));
            }
        }
        if let Some(g) = p.get("Placement.GroupName") {
            let arn = self.arn_of("placement-group", self.caller, g);
            inst.extra
                .push((keys::EC2_PLACEMENT_GROUP.into(), one(arn)));
        }
        if let Some(rdt) = image.and_then(|i| i.attributes.root_device_type().map(str::to_owned)) {
            inst.extra
                .push((keys::EC2_ROOT_DEVICE_TYPE.into(), one(rdt)));
        }
        with_lt(&mut inst);
        self.authorize(inst);

        // The image, and its launch permission.
        let mut img = self.existing("image", "ImageId", image_id)?;
        with_lt(&mut img);
        self.permission_check(image_id, img.known, PermissionKind::Launch);
        self.authorize(img);

        // Subnets: named, of the interfaces named, or the default ones.
        let mut seen = Vec::new();
        for s in &subnet_ids {
            if seen.contains(s) {
                continue;
            }
            seen.push(s.clone());
            let mut t = self.existing("subnet", "SubnetId", s)?;
            with_lt(&mut t);
            self.authorize(t);
        }

        // Security groups: named, of the interfaces named, else the
        // default group of each candidate subnet's VPC.
        if group_ids.is_empty() {
            for s in &subnet_ids {
                let id = self.default_group(s).ok_or_else(|| {
                    MappingError::Unsupported(format!(
                        "RunInstances without a security group: the inventory holds no \
                         default security group for the VPC of {s}"
                    ))
                })?;
                group_ids.push(id);
            }
        }
        let mut seen = Vec::new();
        for g in &group_ids {
            if seen.contains(g) {
                continue;
            }
            seen.push(g.clone());
            let mut t = self.existing("security-group", "SecurityGroupId", g)?;
            with_lt(&mut t);
            self.authorize(t);
        }

        // Network interfaces: existing ones, new ones (one if none given).
        for id in &enis_existing {
            let mut t = self.existing("network-interface", "NetworkInterfaceId", id)?;
            with_lt(&mut t);
            self.authorize(t);
        }
        if enis_existing.is_empty() && enis_new.is_empty() {
            let extra = match subnet_ids.as_slice() {
                [s] => self.subnet_context(s),
                _ => Vec::new(),
            };
            enis_new.push(extra);
        }
        for extra in enis_new {
            let mut t = Self::new_resource("network-interface");
            t.extra = extra;
            with_lt(&mut t);
            self.authorize(t);
        }

        // Volumes: one per EBS block device, else the root volume.
        let bdms = p.block_device_mappings()?;
        let mut any_ebs = false;
        for (i, b) in bdms.iter().enumerate() {
            let Some(ebs) = &b.ebs else { continue };
            any_ebs = true;
            let pre = format!("BlockDeviceMapping.{}.Ebs", i + 1);
            let mut t = Self::new_resource("volume");
            t.extra = self.volume_context(
                &pre,
                ebs.volume_size.as_deref(),
                ebs.volume_type.as_deref(),
                ebs.encrypted.as_deref(),
                ebs.iops.as_deref(),
                ebs.throughput.as_deref(),
                ebs.kms_key_id.as_deref(),
                ebs.snapshot_id.as_deref(),
            )?;
            if let Some(az) = &az {
                t.extra.push((keys::EC2_AVAILABILITY_ZONE.into(), one(az)));
            }
            with_lt(&mut t);
            self.authorize(t);
        }
        let instance_store =
            image.and_then(|i| i.attributes.root_device_type()) == Some("instance-store");
        if !any_ebs && !instance_store {
            let mut t = Self::new_resource("volume");
            if let Some(az) = &az {
                t.extra.push((keys::EC2_AVAILABILITY_ZONE.into(), one(az)));
            }
            with_lt(&mut t);
            self.authorize(t);
        }

        // Key pair, launch template, spot request.
        if let Some(k) = p.get("KeyName") {
            let mut t = self.existing("key-pair", "KeyName", k)?;
            with_lt(&mut t);
            self.authorize(t);
        }
        if let Some(id) = lt_id {
            let mut t = self.existing("launch-template", "LaunchTemplate.LaunchTemplateId", id)?;
            with_lt(&mut t);
            self.authorize(t);
        }
        if market.eq_ignore_ascii_case("spot") {
            self.authorize(Self::new_resource("spot-instances-request"));
        }
        Ok(())
    }

    /// `ec2:Subnet`, `ec2:Vpc`, `ec2:AvailabilityZone` of a new network
    /// interface in subnet `s`.
    fn subnet_context(&self, s: &str) -> Vec<(String, ContextValue)> {
        let mut out = vec![(
            keys::EC2_SUBNET.to_owned(),
            one(self.arn_of_existing("subnet", s)),
        )];
        if let Some(sub) = self.inventory.get(s) {
            if let Some(v) = sub.attributes.vpc_id() {
                out.push((
                    keys::EC2_VPC.into(),
                    one(self.arn_of("vpc", &sub.account, v)),
                ));
            }
            if let Some(az) = sub.attributes.availability_zone() {
                out.push((keys::EC2_AVAILABILITY_ZONE.into(), one(az)));
            }
        }
        out
    }

    /// The `default` security group of the subnet's VPC, from the inventory.
    fn default_group(&self, subnet: &str) -> Option<String> {
        let subnet = self.inventory.get(subnet)?;
        let vpc = subnet.attributes.vpc_id()?;
        self.inventory
            .named(
                ResourceKind::SecurityGroup,
                &subnet.account,
                &subnet.region,
                "default",
            )
            .find(|r| r.attributes.vpc_id() == Some(vpc))
            .map(|r| r.id.clone())
    }
}
