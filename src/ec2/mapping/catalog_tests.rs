//! Table-driven tests over the whole catalog (issue 11, item 3): every EC2
//! action that the Service Authorization Reference gives a resource type has
//! each of its Query API parameters classified (`params_data.rs`, generated
//! from botocore's EC2 model), and the mapping handles every parameter that
//! identifies a resource: it authorizes that very resource (its ARN, with
//! the inventory's owner) or refuses the call, never `type/*` or `*`; a
//! parameter that names a created resource is never looked up.

use super::tests::{ME, OTHER, R, Res, inventory};
use super::*;

/// A value of a parameter that identifies a resource, and the ARN the
/// mapping must authorize for it (`None`: the mapping must refuse, the
/// inventory cannot follow that way of naming).
struct Sample {
    value: String,
    arn: Option<String>,
}

/// The first canonical instance of a parameter pattern (`N` → `1`).
fn instance_of(pattern: &str) -> String {
    pattern
        .split('.')
        .map(|s| if s == "N" { "1" } else { s })
        .collect::<Vec<_>>()
        .join(".")
}

/// A resource of the test inventory for each tracked kind, by how it is named.
fn tracked_sample(inv: &Inventory, rt: &str, by: IdentifiedBy) -> Option<Sample> {
    let kind = ResourceKind::of_type(rt)?;
    // One the name finds alone (security group names repeat across VPCs).
    let r = inv
        .iter()
        .filter(|r| r.kind() == kind && r.account == ME && r.region == R)
        .filter(|r| {
            r.name()
                .is_none_or(|n| inv.named(kind, ME, R, n).count() == 1)
        })
        .min_by(|a, b| a.id.cmp(&b.id))?;
    let value = match by {
        IdentifiedBy::Id => r.arn_id()?.to_owned(),
        IdentifiedBy::Name => r.name()?.to_owned(),
        IdentifiedBy::AltId => r.id.clone(),
        IdentifiedBy::Association => r.attributes.associations().first()?.clone(),
        IdentifiedBy::Arn | IdentifiedBy::PublicIp => return None,
    };
    let def = catalog::resource_type(rt)?;
    Some(Sample {
        value,
        arn: Some(def.arn("aws", &r.region, &r.account, r.arn_id()?)),
    })
}

/// A sample for `rt` named `by`; `region` and `account` are what the
/// request says (region and account parameters of the reference).
fn sample(
    inv: &Inventory,
    rt: &str,
    by: IdentifiedBy,
    region: &str,
    account: &str,
) -> Option<Sample> {
    if let Some(s) = tracked_sample(inv, rt, by) {
        return Some(s);
    }
    let def = catalog::resource_type(rt)?;
    match by {
        // A type the inventory does not track, by id: the ARN from the id,
        // owned by the account the request names (else the caller).
        IdentifiedBy::Id if ResourceKind::of_type(rt).is_none() => {
            let prefix = ID_PREFIXES
                .iter()
                .find(|(_, t)| *t == rt)
                .map_or("test", |(p, _)| *p);
            let value = format!("{prefix}-0test");
            let arn = def.arn("aws", region, account, &value);
            Some(Sample {
                value,
                arn: Some(arn),
            })
        }
        IdentifiedBy::Arn => {
            let arn = def.arn("aws", R, ME, "test");
            Some(Sample {
                value: arn.clone(),
                arn: Some(arn),
            })
        }
        // Lookups the inventory cannot make: refused.
        _ => Some(Sample {
            value: "test-0unresolvable".to_owned(),
            arn: None,
        }),
    }
}

/// The resource type a parameter is sampled as: its only one, else the
/// first candidate with a sample (`CreateTags` names any type by prefix).
fn sampled_type(def: &ActionDef, r: &ExistingRef) -> Option<&'static str> {
    if r.resource_types.is_empty() {
        return def
            .resource_types
            .iter()
            .map(|row| row.resource_type)
            .find(|rt| *rt == "instance");
    }
    r.resource_types
        .iter()
        .copied()
        .find(|rt| ResourceKind::of_type(rt).is_some() || ID_PREFIXES.iter().any(|(_, t)| t == rt))
        .or_else(|| r.resource_types.first().copied())
}

/// Whether the inventory can follow a way of naming a resource of `rt`.
fn resolvable(rt: &str, by: IdentifiedBy) -> bool {
    match by {
        IdentifiedBy::Id | IdentifiedBy::Arn => true,
        IdentifiedBy::Name | IdentifiedBy::AltId => ResourceKind::of_type(rt).is_some(),
        IdentifiedBy::Association => matches!(rt, "instance" | "subnet" | "network-interface"),
        IdentifiedBy::PublicIp => false,
    }
}

/// Whether an action requires a resource type that no parameter can name
/// (in a way the inventory can follow) and the call does not create (the
/// backend derives it): those actions are refused whatever the request says.
fn has_underived_required_type(def: &ActionDef, table: &ActionParams) -> bool {
    def.resource_types.iter().any(|row| {
        let named = table.params.iter().any(|p| match p.role {
            ParamRole::Existing(r) => {
                (r.resource_types.contains(&row.resource_type)
                    || (r.resource_types.is_empty()
                        && row.definition.service() == catalog::SERVICE_PREFIX))
                    && resolvable(row.resource_type, r.by)
            }
            _ => false,
        });
        let derived = row.resource_type == "instance"
            && table.params.iter().any(|p| {
                matches!(p.role, ParamRole::Existing(r)
                    if r.resource_types.iter().any(|t| *t == "volume" || *t == "network-interface"))
            });
        row.required && !named && !table.creates(row.resource_type) && !derived
    })
}

/// Maps `pairs` for `action`, filling parameters the mapping reports
/// missing (a resource of the inventory, or a plain value), so that a
/// parameter under test is judged alone.
fn map_filled(
    inv: &Inventory,
    table: &ActionParams,
    mut pairs: Vec<(String, String)>,
) -> Res<Result<Ec2Call, MappingError>> {
    let def = catalog::action(table.action).ok_or("action not in the catalog")?;
    for _ in 0..6 {
        let params = QueryParams::from_pairs(pairs.clone())?;
        match map_call(&params, R, ME, inv) {
            Err(MappingError::MissingParameter(p)) if !pairs.iter().any(|(k, _)| *k == p) => {
                let value = match table.param(&catalog::param_pattern(&p)).map(|d| d.role) {
                    Some(ParamRole::Existing(r)) => sampled_type(def, &r)
                        .and_then(|rt| sample(inv, rt, r.by, R, ME))
                        .map_or_else(|| "x".to_owned(), |s| s.value),
                    _ => "x".to_owned(),
                };
                pairs.push((p, value));
            }
            other => return Ok(other),
        }
    }
    Err(format!("{}: too many missing parameters: {pairs:?}", table.action).into())
}

/// Base parameters a few action-specific mappings need before they look at
/// the one under test.
fn base(action: &str) -> Vec<(String, String)> {
    let mut out = vec![("Action".to_owned(), action.to_owned())];
    if action == "RunInstances" {
        out.push(("ImageId".to_owned(), "ami-0mine".to_owned()));
    }
    out
}

#[test]
fn every_action_with_a_resource_type_has_its_parameters_classified() -> Res {
    let with_types: Vec<&str> = catalog::actions()
        .filter(|a| !a.resource_types.is_empty())
        .map(|a| a.name)
        .collect();
    let tabled: Vec<&str> = catalog::all_action_params().map(|t| t.action).collect();
    assert_eq!(
        tabled, with_types,
        "one table entry per action with a resource type"
    );
    let mut in_api = 0;
    for table in catalog::all_action_params() {
        let def = catalog::action(table.action).ok_or("unknown action")?;
        assert!(
            table.params.windows(2).all(
                |w| matches!(w, [a, b] if a.name.to_ascii_lowercase() < b.name.to_ascii_lowercase())
            ),
            "{}: parameters sorted for binary search",
            table.action
        );
        for c in table.creates {
            assert!(def.resource(c).is_some(), "{} creates {c}", table.action);
        }
        for p in table.params {
            assert_eq!(table.param(p.name).map(|d| d.name), Some(p.name));
            match p.role {
                ParamRole::Existing(r) => {
                    for rt in r.resource_types {
                        assert!(def.resource(rt).is_some(), "{}: {}", table.action, p.name);
                    }
                    for q in [r.region_param, r.account_param].into_iter().flatten() {
                        assert!(table.param(q).is_some(), "{}: {q}", table.action);
                    }
                }
                ParamRole::Creates(rt) => {
                    assert!(
                        table.creates(rt),
                        "{}: {} creates {rt}",
                        table.action,
                        p.name
                    );
                }
                ParamRole::Other => {}
            }
        }
        if table.in_query_api {
            in_api += 1;
            assert!(!table.params.is_empty(), "{}", table.action);
        } else {
            // Not a Query API call iamgate knows: refused, never guessed.
            let params = QueryParams::from_pairs([("Action", table.action)])?;
            let e = map_call(&params, R, ME, &Inventory::new()).err();
            assert!(
                matches!(e, Some(MappingError::Unsupported(_))),
                "{}: {e:?}",
                table.action
            );
        }
    }
    assert!(in_api > 500, "{in_api} actions in the Query API model");
    Ok(())
}

/// Every parameter that identifies an existing resource, sent alone (plus
/// what the action requires), is authorized as that resource's ARN with
/// the inventory's owner, or refused when the inventory cannot follow it.
#[test]
fn every_identifying_parameter_is_resolved_and_authorized() -> Res {
    let inv = inventory()?;
    let mut checked = 0;
    for table in catalog::all_action_params().filter(|t| t.in_query_api) {
        let def = catalog::action(table.action).ok_or("unknown action")?;
        let underived = has_underived_required_type(def, table);
        for p in table.params {
            let ParamRole::Existing(r) = p.role else {
                continue;
            };
            let rt =
                sampled_type(def, &r).ok_or_else(|| format!("{}: {}", table.action, p.name))?;
            let mut pairs = base(table.action);
            let region = R;
            if let Some(q) = r.region_param {
                pairs.push((q.to_owned(), region.to_owned()));
            }
            let account = if let Some(q) = r.account_param {
                pairs.push((q.to_owned(), OTHER.to_owned()));
                OTHER
            } else {
                ME
            };
            let s = sample(&inv, rt, r.by, region, account)
                .ok_or_else(|| format!("{}: no sample for {}", table.action, p.name))?;
            let name = instance_of(p.name);
            if pairs.iter().any(|(k, _)| *k == name) {
                continue; // the base already names it (RunInstances ImageId)
            }
            pairs.push((name.clone(), s.value.clone()));
            let got = map_filled(&inv, table, pairs)?;
            let want = format!("ec2:{}", table.action);
            match (&s.arn, got) {
                (Some(arn), Ok(call)) => assert!(
                    call.authorizations
                        .iter()
                        .any(|a| a.action == want && a.resource == *arn),
                    "{} {name}={}: no authorization on {arn}: {:?}",
                    table.action,
                    s.value,
                    call.authorizations
                        .iter()
                        .map(|a| (&a.action, &a.resource))
                        .collect::<Vec<_>>()
                ),
                (Some(_), Err(e)) => assert!(
                    underived && matches!(e, MappingError::Unsupported(_)),
                    "{} {name}={}: {e:?}",
                    table.action,
                    s.value
                ),
                (None, got) => assert!(
                    matches!(got, Err(MappingError::Unsupported(_))),
                    "{} {name}={}: the inventory cannot resolve it, yet {got:?}",
                    table.action,
                    s.value
                ),
            }
            checked += 1;
        }
    }
    assert!(checked > 700, "{checked} identifying parameters checked");
    Ok(())
}

/// A resource of a tracked kind that the inventory does not hold is EC2's
/// `*.NotFound` (or, for images and snapshots another account may share,
/// a permission check that cannot pass).
#[test]
fn every_unknown_resource_is_refused() -> Res {
    let inv = inventory()?;
    let mut checked = 0;
    for table in catalog::all_action_params().filter(|t| t.in_query_api) {
        for p in table.params {
            let ParamRole::Existing(r) = p.role else {
                continue;
            };
            let [rt] = r.resource_types else {
                continue;
            };
            let Some(kind) = ResourceKind::of_type(rt) else {
                continue;
            };
            let value = match (r.by, kind) {
                (IdentifiedBy::Id, ResourceKind::KeyPair) | (IdentifiedBy::Name, _) => {
                    "no-such-name".to_owned()
                }
                (IdentifiedBy::Association, ResourceKind::Instance) => "iip-assoc-0fff".to_owned(),
                (IdentifiedBy::Association, ResourceKind::Subnet) => {
                    "subnet-cidr-assoc-0fff".to_owned()
                }
                (IdentifiedBy::Association, ResourceKind::NetworkInterface) => {
                    "eni-attach-0fff".to_owned()
                }
                (IdentifiedBy::Association, _) => continue,
                (IdentifiedBy::AltId, ResourceKind::KeyPair) => "key-0fff".to_owned(),
                _ => {
                    let prefix = ID_PREFIXES
                        .iter()
                        .find(|(_, t)| t == rt)
                        .map_or("x", |(p, _)| *p);
                    format!("{prefix}-0fffffffffffffff1")
                }
            };
            let mut pairs = base(table.action);
            let name = instance_of(p.name);
            if pairs.iter().any(|(k, _)| *k == name) {
                pairs.retain(|(k, _)| *k != name);
            }
            pairs.push((name.clone(), value.clone()));
            let params = QueryParams::from_pairs(pairs)?;
            let got = map_call(&params, R, ME, &inv);
            let ok = match &got {
                Err(MappingError::NotFound { resource_type, .. }) => resource_type == rt,
                Ok(call) => {
                    permission_kind(table.action, p.name).is_some()
                        && call
                            .permission_checks
                            .iter()
                            .any(|c| c.resource_id == value && !c.permits(ME, None))
                }
                Err(_) => false,
            };
            assert!(ok, "{} {name}={value}: {got:?}", table.action);
            checked += 1;
        }
    }
    assert!(checked > 150, "{checked} parameters checked");
    Ok(())
}

/// A parameter that names the resource a call creates is not looked up:
/// the call is authorized against the new `type/*`, even when a resource
/// of that name exists.
#[test]
fn every_creating_parameter_names_a_new_resource() -> Res {
    let inv = inventory()?;
    let mut checked = 0;
    for table in catalog::all_action_params() {
        for p in table.params {
            let ParamRole::Creates(rt) = p.role else {
                continue;
            };
            for value in ["web", "blue-team", "brand-new"] {
                let mut pairs = base(table.action);
                pairs.push((instance_of(p.name), value.to_owned()));
                let call = match map_filled(&inv, table, pairs)? {
                    Ok(call) => call,
                    Err(e) => {
                        return Err(format!("{} {}={value}: {e:?}", table.action, p.name).into());
                    }
                };
                let new = catalog::resource_type(rt)
                    .ok_or("unknown type")?
                    .arn("aws", R, ME, "*");
                assert!(
                    call.authorizations.iter().any(|a| a.resource == new),
                    "{} {}={value}: no authorization on {new}",
                    table.action,
                    p.name
                );
                checked += 1;
            }
        }
    }
    assert!(checked >= 18, "{checked}");
    Ok(())
}

/// A parameter an action does not have is refused for every action with a
/// resource type, before anything is authorized.
#[test]
fn every_unknown_parameter_is_refused() -> Res {
    let inv = inventory()?;
    for table in catalog::all_action_params().filter(|t| t.in_query_api) {
        for bogus in ["NotAParameter", "InstanceIds.1", "Filter.1.Nme"] {
            if table.param(&catalog::param_pattern(bogus)).is_some() {
                continue;
            }
            let params = QueryParams::from_pairs([("Action", table.action), (bogus, "x")])?;
            let got = map_call(&params, R, ME, &inv);
            assert!(
                matches!(&got, Err(MappingError::UnknownParameter(n)) if n == bogus),
                "{} {bogus}: {got:?}",
                table.action
            );
        }
    }
    Ok(())
}
