//! The `iamgate.v1.Inventory` gRPC service: protobuf messages converted to
//! the JSON wire shape and validated by [`super::wire`], then applied as
//! the HTTP routes apply them ([`super::apply`]).

use tonic::Status;

use super::wire::*;
use super::{apply, check_batch};
use crate::ec2::inventory::{AttributesRepr, Grant, InventoryCounts, Resource, Rule};
use crate::ec2::inventory_store::Change;
use crate::server::errors::ServeError;
use crate::server::grpc_api::pb;
use crate::server::state::AppState;
use crate::telemetry::Frontend;
use pb::inventory_server::{Inventory as InventoryApi, InventoryServer};

/// The `iamgate.v1.Inventory` service.
#[derive(Debug, Clone)]
pub struct InventoryService {
    state: AppState,
}

impl InventoryService {
    /// The tonic server for this service, with the message size limit
    /// (`limits.max_body_bytes`) applied.
    pub fn server(state: AppState) -> InventoryServer<Self> {
        let limit = state.config.limits.max_body_bytes;
        InventoryServer::new(Self { state }).max_decoding_message_size(limit)
    }

    /// Counts an error and turns it into a status.
    fn refuse(&self, e: ServeError) -> Status {
        self.state.metrics.request_error(Frontend::Grpc, e.reason());
        e.grpc_status()
    }
}

#[tonic::async_trait]
impl InventoryApi for InventoryService {
    async fn apply(
        &self,
        request: tonic::Request<pb::ApplyInventoryRequest>,
    ) -> Result<tonic::Response<pb::ApplyInventoryResponse>, Status> {
        let req = request.into_inner();
        check_batch(&self.state, req.changes.len()).map_err(|e| self.refuse(e))?;
        let changes = req
            .changes
            .into_iter()
            .enumerate()
            .map(|(i, c)| change_from_proto(c, &format!("changes[{i}]")))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.refuse(ServeError::from(e)))?;
        let (applied, counts) = apply(&self.state, Frontend::Grpc, changes)
            .await
            .map_err(|e| self.refuse(e))?;
        Ok(tonic::Response::new(pb::ApplyInventoryResponse {
            applied: Some(pb::InventoryApplied {
                upserted: count(applied.upserted),
                deleted: count(applied.deleted),
                grants_changed: count(applied.grants_changed),
                not_found: count(applied.not_found),
            }),
            counts: Some(counts_to_proto(counts)),
        }))
    }

    async fn get(
        &self,
        request: tonic::Request<pb::GetInventoryResourceRequest>,
    ) -> Result<tonic::Response<pb::GetInventoryResourceResponse>, Status> {
        let id = request.into_inner().id;
        check_id(&id, "id").map_err(|e| self.refuse(ServeError::from(e)))?;
        let inventory = super::store(&self.state)
            .map_err(|e| self.refuse(e))?
            .load();
        let resource = inventory
            .get(&id)
            .ok_or_else(|| Status::not_found(format!("no resource `{id}` in the inventory")))?;
        Ok(tonic::Response::new(pb::GetInventoryResourceResponse {
            resource: Some(resource_to_proto(resource)),
        }))
    }
}

fn count(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

fn counts_to_proto(c: InventoryCounts) -> pb::InventoryCounts {
    pb::InventoryCounts {
        instances: count(c.instances),
        images: count(c.images),
        snapshots: count(c.snapshots),
        volumes: count(c.volumes),
        security_groups: count(c.security_groups),
        network_interfaces: count(c.network_interfaces),
        subnets: count(c.subnets),
        prefix_lists: count(c.prefix_lists),
    }
}

pub(super) fn change_from_proto(
    c: pb::InventoryChange,
    path: &str,
) -> Result<Change, InvalidInventory> {
    use pb::inventory_change::Op as P;
    match c.op {
        None => Err(at(path, "no op set (one of upsert, delete, grants)")),
        Some(P::Upsert(r)) => {
            let at_r = format!("{path}.upsert");
            let json = resource_json_from_proto(r, &at_r)?;
            Ok(Change::Upsert {
                resource: Box::new(resource_from_json(json, &at_r)?),
            })
        }
        Some(P::Delete(d)) => {
            check_id(&d.id, &format!("{path}.delete.id"))?;
            Ok(Change::Delete { id: d.id })
        }
        Some(P::Grants(g)) => {
            let at_g = format!("{path}.grants");
            check_id(&g.id, &format!("{at_g}.id"))?;
            let add = grants_from_proto(g.add, &format!("{at_g}.add"))?;
            let remove = grants_from_proto(g.remove, &format!("{at_g}.remove"))?;
            grants(&add, &format!("{at_g}.add"))?;
            grants(&remove, &format!("{at_g}.remove"))?;
            Ok(Change::Grants {
                id: g.id,
                add,
                remove,
            })
        }
    }
}

pub(super) fn grants_from_proto(
    list: Vec<pb::InventoryGrant>,
    path: &str,
) -> Result<Vec<Grant>, InvalidInventory> {
    use pb::inventory_grant::Grantee as G;
    list.into_iter()
        .enumerate()
        .map(|(i, g)| match g.grantee {
            Some(G::Account(a)) => Ok(Grant::Account(a)),
            Some(G::All(true)) => Ok(Grant::All),
            Some(G::All(false)) => Err(at(&format!("{path}[{i}].all"), "must be true when set")),
            Some(G::Organization(a)) => Ok(Grant::Organization(a)),
            Some(G::OrganizationalUnit(a)) => Ok(Grant::OrganizationalUnit(a)),
            None => Err(at(
                &format!("{path}[{i}]"),
                "no grantee set (one of account, all, organization, organizational_unit)",
            )),
        })
        .collect()
}

fn grant_to_proto(g: &Grant) -> pb::InventoryGrant {
    use pb::inventory_grant::Grantee as G;
    pb::InventoryGrant {
        grantee: Some(match g {
            Grant::Account(a) => G::Account(a.clone()),
            Grant::All => G::All(true),
            Grant::Organization(a) => G::Organization(a.clone()),
            Grant::OrganizationalUnit(a) => G::OrganizationalUnit(a.clone()),
        }),
    }
}

fn rule_from_proto(r: pb::InventoryRule) -> RuleJson {
    RuleJson {
        protocol: r.protocol,
        from_port: r.from_port,
        to_port: r.to_port,
        cidrs: r.cidrs,
        groups: r.groups,
        prefix_lists: r.prefix_lists,
    }
}

fn rule_to_proto(r: &Rule) -> pb::InventoryRule {
    let j = rule_to_json(r);
    pb::InventoryRule {
        protocol: j.protocol,
        from_port: j.from_port,
        to_port: j.to_port,
        cidrs: j.cidrs,
        groups: j.groups,
        prefix_lists: j.prefix_lists,
    }
}

/// The JSON shape of a protobuf resource, so both front-ends share
/// [`resource_from_json`].
pub(super) fn resource_json_from_proto(
    r: pb::InventoryResource,
    path: &str,
) -> Result<ResourceJson, InvalidInventory> {
    let kind = if r.kind.is_empty() {
        None
    } else {
        Some(parse_kind(&r.kind).ok_or_else(|| {
            at(
                &format!("{path}.kind"),
                format!("unknown kind `{}`; one of {}", r.kind, kind_names()),
            )
        })?)
    };
    let a = r.attributes.unwrap_or_default();
    Ok(ResourceJson {
        id: r.id,
        kind,
        account: r.account,
        region: r.region,
        tags: r.tags.into_iter().collect(),
        attributes: AttributesJson {
            grants: grants_from_proto(a.grants, &format!("{path}.attributes.grants"))?,
            instance_type: a.instance_type,
            image_id: a.image_id,
            subnet_id: a.subnet_id,
            vpc_id: a.vpc_id,
            key_name: a.key_name,
            availability_zone: a.availability_zone,
            tenancy: a.tenancy,
            root_device_type: a.root_device_type,
            ebs_optimized: a.ebs_optimized,
            instance_profile: a.instance_profile,
            volume_size: a.volume_size,
            volume_type: a.volume_type,
            iops: a.iops,
            encrypted: a.encrypted,
            snapshot_id: a.snapshot_id,
            volume_id: a.volume_id,
            public: a.public,
            owner_alias: a.owner_alias,
            groups: a.groups,
            interfaces: a.interfaces,
            attached_to: a.attached_to,
            addresses: a.addresses,
            group_name: a.group_name,
            ingress: a.ingress.into_iter().map(rule_from_proto).collect(),
            egress: a.egress.into_iter().map(rule_from_proto).collect(),
            cidrs: a.cidrs,
            private_ip: a.private_ip,
            http_tokens: a.http_tokens,
            name: a.name,
            default_for_az: a.default_for_az,
            associations: a.associations,
        },
    })
}

pub(super) fn resource_to_proto(r: &Resource) -> pb::InventoryResource {
    let a = AttributesRepr::from(&r.attributes);
    pb::InventoryResource {
        id: r.id.clone(),
        kind: r.kind().arn_type().to_owned(),
        account: r.account.clone(),
        region: r.region.clone(),
        tags: r.tags.iter().cloned().collect(),
        attributes: Some(pb::InventoryAttributes {
            instance_type: a.instance_type,
            image_id: a.image_id,
            subnet_id: a.subnet_id,
            vpc_id: a.vpc_id,
            key_name: a.key_name,
            availability_zone: a.availability_zone,
            tenancy: a.tenancy,
            root_device_type: a.root_device_type,
            ebs_optimized: a.ebs_optimized,
            instance_profile: a.instance_profile,
            volume_size: a.volume_size,
            volume_type: a.volume_type,
            iops: a.iops,
            encrypted: a.encrypted,
            snapshot_id: a.snapshot_id,
            volume_id: a.volume_id,
            public: a.public,
            owner_alias: a.owner_alias,
            grants: a.grants.iter().map(grant_to_proto).collect(),
            groups: a.groups,
            interfaces: a.interfaces,
            attached_to: a.attached_to,
            addresses: a.addresses.iter().map(ToString::to_string).collect(),
            group_name: a.group_name,
            ingress: a.ingress.iter().map(rule_to_proto).collect(),
            egress: a.egress.iter().map(rule_to_proto).collect(),
            cidrs: a.cidrs.iter().map(ToString::to_string).collect(),
            private_ip: a.private_ip.map(|ip| ip.to_string()),
            http_tokens: a.http_tokens,
            name: a.name,
            default_for_az: a.default_for_az,
            associations: a.associations,
        }),
    }
}
