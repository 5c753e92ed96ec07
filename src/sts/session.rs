//! A session as a caller: what a decision for temporary credentials uses
//! (IAM User Guide, "AWS global condition context keys" and "Session
//! policies"). The principal is the session's
//! (`arn:aws:sts::ACCT:assumed-role/ROLE/SESSION`, whose
//! `aws:PrincipalArn` is the role's ARN, or the IAM user of a
//! `GetSessionToken` session); the role's identity policies, boundary and
//! the SCPs of its account apply as for the role, narrowed by the session
//! policies; session tags are principal tags that override the role's.

use crate::engine::AuthzRequest;
use crate::engine::ContextValue;
use crate::identity::SessionClaims;
use crate::identity::time::iso8601;

/// Fills a request's caller from a session: the principal, session tags
/// and policies, and the context keys AWS sets for temporary credentials
/// (`aws:userid`, `aws:TokenIssueTime`, `aws:MultiFactorAuthPresent`, and
/// `aws:SourceIdentity` when the session has one).
pub fn apply(claims: &SessionClaims, req: &mut AuthzRequest) {
    req.principal_arn.clone_from(&claims.principal_arn);
    req.session_tags.clone_from(&claims.tags);
    req.session_policy = claims
        .policy
        .as_ref()
        .map(|text| serde_json::Value::String(text.clone()));
    req.session_policy_arns.clone_from(&claims.policy_arns);
    if let Some(id) = user_id(claims) {
        req.context
            .insert_static("aws:userid", ContextValue::One(id));
    }
    req.context.insert_static(
        "aws:TokenIssueTime",
        ContextValue::One(iso8601(claims.issued)),
    );
    req.context.insert_static(
        "aws:MultiFactorAuthPresent",
        ContextValue::One(if claims.mfa { "true" } else { "false" }.to_owned()),
    );
    // IAM User Guide, global condition keys: `aws:MultiFactorAuthAge` is
    // present only for temporary credentials obtained with MFA, as the
    // seconds since that authentication (the session's issue: the code was
    // verified by the request that issued it). The request's time is its
    // `aws:EpochTime`, set by every front door before this.
    if claims.mfa {
        let now = match req.context.get("aws:epochtime") {
            Some(crate::policy::variables::ValueRef::One(s)) => s.parse::<u64>().ok(),
            _ => None,
        }
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs())
        });
        req.context.insert_static(
            "aws:MultiFactorAuthAge",
            ContextValue::One(now.saturating_sub(claims.issued).to_string()),
        );
    }
    if let Some(s) = &claims.source_identity {
        req.context
            .insert_static("aws:SourceIdentity", ContextValue::One(s.clone()));
    }
    // Credentials an instance got from its instance metadata (IAM User
    // Guide, global condition keys: present on requests signed with
    // role credentials delivered through the instance metadata service).
    if let Some(e) = &claims.ec2 {
        req.context.insert_static(
            "ec2:SourceInstanceARN",
            ContextValue::One(e.instance_arn.clone()),
        );
        req.context.insert_static(
            "aws:EC2InstanceSourcePrivateIPv4",
            ContextValue::One(e.private_ipv4.clone()),
        );
        if let Some(v) = &e.vpc_id {
            req.context
                .insert_static("aws:EC2InstanceSourceVPC", ContextValue::One(v.clone()));
        }
    }
}

/// `aws:userid` of a session: `ROLEID:SESSION` for a role session, the
/// user's id for a user's session (`None` when the bundle gave no id).
pub fn user_id(claims: &SessionClaims) -> Option<String> {
    let id = claims.unique_id.as_deref()?;
    Some(if claims.role_arn.is_some() {
        format!("{id}:{}", claims.session_name)
    } else {
        id.to_owned()
    })
}

/// The account of a principal ARN (its fifth field).
pub fn account_of(arn: &str) -> &str {
    arn.split(':').nth(4).unwrap_or_default()
}

/// `arn:PARTITION:sts::ACCOUNT:assumed-role/ROLE_NAME/SESSION` of a role
/// (the role's path is not part of it).
pub fn assumed_role_arn(role_arn: &str, session_name: &str) -> Option<String> {
    let a = crate::policy::arn::Arn::parse(role_arn)?;
    let name = a.resource.strip_prefix("role/")?.rsplit('/').next()?;
    Some(format!(
        "arn:{}:sts::{}:assumed-role/{name}/{session_name}",
        a.partition, a.account
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::variables::{Lookup as _, ValueRef};

    #[test]
    fn sessions_set_the_keys_aws_sets() {
        let claims = SessionClaims {
            access_key_id: "ASIAEXAMPLE".into(),
            principal_arn: "arn:aws:sts::111122223333:assumed-role/Dev/alice".into(),
            role_arn: Some("arn:aws:iam::111122223333:role/ops/Dev".into()),
            unique_id: Some("AROAEXAMPLEID".into()),
            session_name: "alice".into(),
            policy: Some("{}".into()),
            policy_arns: vec!["arn:aws:iam::aws:policy/ReadOnlyAccess".into()],
            tags: vec![("Team".into(), "blue".into())],
            transitive_tag_keys: Vec::new(),
            source_identity: Some("alice@example.com".into()),
            issued: 1_440_938_160,
            expires: 1_440_941_760,
            chained: false,
            mfa: false,
            ec2: None,
        };
        let mut req = AuthzRequest::default();
        apply(&claims, &mut req);
        assert_eq!(req.principal_arn, claims.principal_arn);
        assert_eq!(req.session_tags, claims.tags);
        assert_eq!(req.session_policy_arns, claims.policy_arns);
        let p = crate::engine::Principal::parse(&req.principal_arn).unwrap();
        let r = crate::engine::Request::new(&p, "ec2:DescribeInstances", "*", &req.context);
        for (key, want) in [
            ("aws:userid", "AROAEXAMPLEID:alice"),
            ("aws:tokenissuetime", "2015-08-30T12:36:00Z"),
            ("aws:multifactorauthpresent", "false"),
            ("aws:sourceidentity", "alice@example.com"),
            ("aws:principaltype", "AssumedRole"),
        ] {
            assert!(
                matches!(r.get(key), Some(ValueRef::One(v)) if v == want),
                "{key}"
            );
        }
        assert_eq!(
            assumed_role_arn("arn:aws:iam::111122223333:role/ops/Dev", "s1").unwrap(),
            "arn:aws:sts::111122223333:assumed-role/Dev/s1"
        );
        assert_eq!(
            assumed_role_arn("arn:aws:iam::111122223333:user/x", "s"),
            None
        );
    }

    /// Issue 13 (IAM User Guide, global condition keys):
    /// `aws:MultiFactorAuthAge` is present only for a session obtained with
    /// MFA, as the seconds since then at the request's `aws:EpochTime`;
    /// `aws:MultiFactorAuthPresent` is present for every session.
    #[test]
    fn mfa_age_is_present_only_for_mfa_sessions() {
        let mut claims = crate::identity::session::tests::claims(2_000_000_000);
        claims.issued = 1_700_000_000;
        for (mfa, present, age) in [(false, "false", None), (true, "true", Some("125"))] {
            claims.mfa = mfa;
            let mut req = AuthzRequest::default();
            req.context
                .insert_static("aws:EpochTime", ContextValue::One("1700000125".into()));
            apply(&claims, &mut req);
            let p = crate::engine::Principal::parse(&req.principal_arn).unwrap();
            let r = crate::engine::Request::new(&p, "ec2:DescribeInstances", "*", &req.context);
            assert!(
                matches!(r.get("aws:multifactorauthpresent"), Some(ValueRef::One(v)) if v == present)
            );
            match age {
                Some(want) => assert!(
                    matches!(r.get("aws:multifactorauthage"), Some(ValueRef::One(v)) if v == want)
                ),
                None => assert!(r.get("aws:multifactorauthage").is_none()),
            }
        }
    }

    /// Issue 13: instance-profile sessions carry the instance's keys.
    #[test]
    fn instance_sessions_carry_the_instance_keys() {
        let mut claims = crate::identity::session::tests::claims(2_000_000_000);
        claims.ec2 = Some(crate::identity::session::Ec2Source {
            instance_arn: "arn:aws:ec2:us-east-1:111122223333:instance/i-0abc".into(),
            vpc_id: Some("vpc-0abc".into()),
            private_ipv4: "10.0.0.5".into(),
        });
        let mut req = AuthzRequest::default();
        apply(&claims, &mut req);
        for (key, want) in [
            (
                "ec2:SourceInstanceARN",
                "arn:aws:ec2:us-east-1:111122223333:instance/i-0abc",
            ),
            ("aws:EC2InstanceSourceVPC", "vpc-0abc"),
            ("aws:EC2InstanceSourcePrivateIPv4", "10.0.0.5"),
        ] {
            let got = req.context.get(&key.to_ascii_lowercase());
            assert!(
                matches!(got, Some(ValueRef::One(v)) if v == want),
                "{key}: {got:?}"
            );
        }
    }
}
