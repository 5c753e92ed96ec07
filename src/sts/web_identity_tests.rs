//! `AssumeRoleWithWebIdentity` parameters and trust-policy decisions for
//! web identity callers, through the engine (issue 16). The trust policies
//! are the shapes the IAM User Guide ("Create a role for OpenID Connect
//! federation") and the EKS IRSA docs give.

use std::sync::Arc;

use serde_json::json;

use super::*;
use crate::engine::{
    Applicable, CompiledPolicy, Outcome, PolicySet, Principal, PrincipalKind, Request, decide,
};
use crate::policy::PolicyKind;

const ROLE: &str = "arn:aws:iam::111122223333:role/irsa/s3-reader";
const HP: &str = "oidc.eks.us-west-2.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE";

fn provider_arn(account: &str, hp: &str) -> String {
    format!("arn:aws:iam::{account}:oidc-provider/{hp}")
}

fn verified(sub: &str) -> VerifiedToken {
    VerifiedToken {
        issuer: format!("https://{HP}"),
        issuer_host_path: HP.into(),
        sub: sub.into(),
        aud: vec!["sts.amazonaws.com".into()],
        azp: None,
        amr: None,
        exp: 0,
        iat: None,
    }
}

fn set(kind: PolicyKind, doc: serde_json::Value) -> PolicySet {
    PolicySet::new(vec![Arc::new(
        CompiledPolicy::from_json("p", kind, &doc).unwrap(),
    )])
}

fn trust(statements: serde_json::Value) -> PolicySet {
    set(
        PolicyKind::Trust,
        json!({"Version": "2012-10-17", "Statement": statements}),
    )
}

/// Decides `sts:AssumeRoleWithWebIdentity` on ROLE for a token, as the
/// STS listener does (the provider ARN in the role's account).
fn run(trust: &PolicySet, token: &VerifiedToken, scps: Option<&[PolicySet]>) -> Outcome {
    let arn = provider_arn("111122223333", &token.issuer_host_path);
    let caller = Principal::parse(&arn).unwrap();
    assert_eq!(caller.kind(), PrincipalKind::WebIdentity);
    let mut ctx = Context::new();
    apply_token(token, &arn, &mut ctx);
    ctx.insert("sts:RoleSessionName", ContextValue::One("s1".into()));
    let applicable = Applicable {
        resource: Some(trust),
        scps,
        ..Applicable::default()
    };
    decide(&applicable, &Request::new(&caller, IAM_ACTION, ROLE, &ctx)).outcome
}

fn eks_trust() -> PolicySet {
    trust(json!([{
        "Effect": "Allow",
        "Principal": {"Federated": provider_arn("111122223333", HP)},
        "Action": "sts:AssumeRoleWithWebIdentity",
        "Condition": {"StringEquals": {
            format!("{HP}:sub"): "system:serviceaccount:apps:reader",
            format!("{HP}:aud"): "sts.amazonaws.com"
        }}
    }]))
}

#[test]
fn eks_trust_policy_allows_the_named_service_account_only() {
    let t = eks_trust();
    assert_eq!(
        run(&t, &verified("system:serviceaccount:apps:reader"), None),
        Outcome::Allowed
    );
    assert_eq!(
        run(&t, &verified("system:serviceaccount:apps:writer"), None),
        Outcome::ImplicitDeny
    );
    let mut other_aud = verified("system:serviceaccount:apps:reader");
    other_aud.aud = vec!["vault".into()];
    assert_eq!(run(&t, &other_aud, None), Outcome::ImplicitDeny);
    // azp, when present, is the `aud` key's value.
    let mut azp = verified("system:serviceaccount:apps:reader");
    azp.azp = Some("sts.amazonaws.com".into());
    azp.aud = vec!["vault".into()];
    assert_eq!(run(&t, &azp, None), Outcome::Allowed);
    // Another issuer's token is not this provider's.
    let mut other = verified("system:serviceaccount:apps:reader");
    other.issuer_host_path = "oidc.example.test/id/OTHER".into();
    assert_eq!(run(&t, &other, None), Outcome::ImplicitDeny);
}

#[test]
fn only_federated_principals_match_and_scps_do_not_apply() {
    let sub = verified("system:serviceaccount:apps:reader");
    // The account (or `:root`) principal does not name a web identity.
    for who in ["111122223333", "arn:aws:iam::111122223333:root"] {
        let t = trust(json!([{"Effect": "Allow", "Principal": {"AWS": who},
            "Action": "sts:AssumeRoleWithWebIdentity"}]));
        assert_eq!(run(&t, &sub, None), Outcome::ImplicitDeny, "{who}");
    }
    // The same provider in another account is another provider.
    let t = trust(json!([{"Effect": "Allow",
        "Principal": {"Federated": provider_arn("444455556666", HP)},
        "Action": "sts:AssumeRoleWithWebIdentity"}]));
    assert_eq!(run(&t, &sub, None), Outcome::ImplicitDeny);
    // A trust policy for AssumeRole does not allow web identities.
    let t = trust(json!([{"Effect": "Allow",
        "Principal": {"Federated": provider_arn("111122223333", HP)},
        "Action": "sts:AssumeRole"}]));
    assert_eq!(run(&t, &sub, None), Outcome::ImplicitDeny);
    // SCPs govern the account's principals; the federated caller has no
    // AWS account, so even a deny-all SCP leaves the trust decision alone.
    let scp = set(
        PolicyKind::Scp,
        json!({"Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Action": "*", "Resource": "*"}]}),
    );
    assert_eq!(
        run(&eks_trust(), &sub, Some(std::slice::from_ref(&scp))),
        Outcome::Allowed
    );
}

#[test]
fn wildcards_amr_provider_key_and_explicit_denies() {
    let t = trust(json!([
        {"Effect": "Allow",
         "Principal": {"Federated": provider_arn("111122223333", HP)},
         "Action": "sts:AssumeRoleWithWebIdentity",
         "Condition": {
            "StringLike": {format!("{HP}:sub"): "system:serviceaccount:apps:*"},
            "StringEquals": {"aws:FederatedProvider": provider_arn("111122223333", HP)},
            "ForAnyValue:StringEquals": {format!("{HP}:amr"): "pwd"}
         }},
        {"Effect": "Deny",
         "Principal": {"Federated": provider_arn("111122223333", HP)},
         "Action": "sts:AssumeRoleWithWebIdentity",
         "Condition": {"StringEquals": {format!("{HP}:sub"): "system:serviceaccount:apps:banned"}}}
    ]));
    let mut tok = verified("system:serviceaccount:apps:anything");
    tok.amr = Some(vec!["mfa".into(), "pwd".into()]);
    assert_eq!(run(&t, &tok, None), Outcome::Allowed);
    tok.amr = Some(vec!["mfa".into()]);
    assert_eq!(run(&t, &tok, None), Outcome::ImplicitDeny);
    tok.amr = None;
    assert_eq!(run(&t, &tok, None), Outcome::ImplicitDeny);
    let mut banned = verified("system:serviceaccount:apps:banned");
    banned.amr = Some(vec!["pwd".into()]);
    assert_eq!(run(&t, &banned, None), Outcome::ExplicitDeny);
    let mut outside = verified("system:serviceaccount:kube-system:admin");
    outside.amr = Some(vec!["pwd".into()]);
    assert_eq!(run(&t, &outside, None), Outcome::ImplicitDeny);
}

fn input(body: &str) -> Result<WebIdentityInput, StsError> {
    parse(&Params::parse("", body).unwrap(), "", body)
}

const BASE: &str = "Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleArn=arn%3Aaws%3Aiam%3A%3A111122223333%3Arole%2FDev&RoleSessionName=pod-1&WebIdentityToken=aaaa.bbbb.cccc";

#[test]
fn parameters_are_read_with_sts_limits() {
    assert!(is_web_identity(&Params::parse("", BASE).unwrap()));
    let i = input(BASE).unwrap();
    assert_eq!(i.token, "aaaa.bbbb.cccc");
    assert_eq!(i.role.role_arn, "arn:aws:iam::111122223333:role/Dev");
    assert_eq!(i.role.session_name, "pod-1");
    let i = input(&format!(
        "{BASE}&DurationSeconds=900&PolicyArns.member.1.arn=arn%3Aaws%3Aiam%3A%3Aaws%3Apolicy%2FReadOnlyAccess&Policy={}",
        "%7B%22Version%22%3A%222012-10-17%22%2C%22Statement%22%3A%5B%7B%22Effect%22%3A%22Allow%22%2C%22Action%22%3A%22ec2%3A*%22%2C%22Resource%22%3A%22*%22%7D%5D%7D"
    ))
    .unwrap();
    assert_eq!(i.role.duration, Some(900));
    assert_eq!(i.role.policy_arns.len(), 1);
    assert!(i.role.policy.as_deref().unwrap().contains("ec2:*"));
    for (extra, code) in [
        ("&ExternalId=abc", "InvalidParameterValue"),
        (
            "&Tags.member.1.Key=a&Tags.member.1.Value=b",
            "InvalidParameterValue",
        ),
        ("&SourceIdentity=abc", "InvalidParameterValue"),
        ("&ProviderId=www.amazon.com", "InvalidParameterValue"),
        ("&DurationSeconds=60", "ValidationError"),
        ("&DurationSeconds=43201", "ValidationError"),
    ] {
        assert_eq!(
            input(&format!("{BASE}{extra}")).unwrap_err().code,
            code,
            "{extra}"
        );
    }
    let no_token = BASE.replace("&WebIdentityToken=aaaa.bbbb.cccc", "");
    assert_eq!(input(&no_token).unwrap_err().code, "ValidationError");
    let short = BASE.replace("aaaa.bbbb.cccc", "ab");
    assert_eq!(input(&short).unwrap_err().code, "ValidationError");
    let no_session = BASE.replace("&RoleSessionName=pod-1", "");
    assert_eq!(input(&no_session).unwrap_err().code, "ValidationError");
    let bad_session = BASE.replace("pod-1", "pod%2F1");
    assert_eq!(input(&bad_session).unwrap_err().code, "ValidationError");
    // The token's name, however encoded, is not passed to AssumeRole's
    // parser (which would refuse it as unknown).
    let encoded = BASE.replace("WebIdentityToken", "WebIdentity%54oken");
    assert!(input(&encoded).is_ok());
}
