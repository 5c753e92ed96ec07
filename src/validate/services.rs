//! `RESOURCE_SERVICE_MISMATCH`: a resource ARN in the namespace of a service
//! that none of the statement's actions acts on (`ec2:StartInstances` on
//! `arn:aws:s3:::bucket`). IAM accepts it, but the resource can never be
//! the one such a request names, so the statement never applies to it.
//!
//! An action acts on the resources of its own service, plus the few other
//! namespaces AWS documents for it: for EC2 those of the catalog's resource
//! types (ACM certificates, IAM roles, ...), and `sts:AssumeRole*` on IAM
//! roles, `ssm:SendCommand`/`StartSession` and EC2 Instance Connect on EC2
//! instances.

use crate::policy::wildcard;
use crate::service::catalog::Catalog;
use crate::validate::located::Stmt;
use crate::validate::{Finding, Severity};

/// Other ARN namespaces the actions of a service act on (those of a
/// service with a catalog come from its resource types).
const ALSO: &[(&str, &[&str])] = &[
    ("sts", &["iam"]),
    ("ssm", &["ec2"]),
    ("ec2-instance-connect", &["ec2"]),
];

/// Whether actions of `service` (lower case) may act on ARNs of `namespace`.
fn acts_on(service: &str, namespace: &str, catalogs: &[&'static Catalog]) -> bool {
    if service == namespace {
        return true;
    }
    if let Some(c) = catalogs.iter().find(|c| c.prefix == service) {
        return c.acts_on(namespace);
    }
    ALSO.iter()
        .any(|(s, also)| *s == service && also.contains(&namespace))
}

/// The service field of an ARN (`arn:PARTITION:SERVICE:...`).
fn arn_namespace(arn: &str) -> Option<&str> {
    let mut parts = arn.splitn(4, ':');
    (parts.next() == Some("arn")).then_some(())?;
    parts.nth(1)
}

/// Runs the check on one statement.
pub(crate) fn check(s: &Stmt<'_>, catalogs: &[&'static Catalog], out: &mut Vec<Finding>) {
    if s.not_action() || s.not_resource() {
        return;
    }
    // The services the statement's actions name, as (lower-case) patterns.
    let mut services: Vec<String> = Vec::new();
    for a in &s.actions {
        let Some((service, _)) = a.text.split_once(':') else {
            return; // `*`: every service.
        };
        let service = service.to_ascii_lowercase();
        if service.contains(['*', '?']) {
            return; // a service pattern: too broad to judge.
        }
        if !services.contains(&service) {
            services.push(service);
        }
    }
    if services.is_empty() {
        return;
    }
    for r in &s.resources {
        let Some(namespace) = arn_namespace(&r.text) else {
            continue;
        };
        let namespace = namespace.to_ascii_lowercase();
        if namespace.is_empty() || namespace.contains(['*', '?', '$']) {
            continue;
        }
        if services
            .iter()
            .any(|svc| acts_on(svc, &namespace, catalogs) || wildcard::matches_str(&namespace, svc))
        {
            continue;
        }
        let list = services
            .iter()
            .map(|s| format!("`{s}`"))
            .collect::<Vec<_>>()
            .join(", ");
        out.push(Finding::new(
            Severity::Warning,
            "RESOURCE_SERVICE_MISMATCH",
            r.path.clone(),
            format!(
                "`{}` is a resource of service `{namespace}`, which none of the statement's \
                 actions ({list}) acts on, so it never applies",
                r.text
            ),
        ));
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::policy::PolicyKind;
    use crate::validate::validate_document;

    fn codes(doc: serde_json::Value) -> Vec<(String, &'static str)> {
        validate_document(&doc, PolicyKind::Identity, crate::validate::TEST_CATALOGS)
            .into_iter()
            .filter(|f| f.code == "RESOURCE_SERVICE_MISMATCH")
            .map(|f| (f.path, f.code))
            .collect()
    }

    #[test]
    fn a_resource_of_another_service_is_flagged() {
        let found = codes(json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "ec2:StartInstances", "Resource": "arn:aws:s3:::bucket"},
            {"Effect": "Allow", "Action": ["s3:GetObject", "ec2:StopInstances"],
             "Resource": ["arn:aws:s3:::bucket/*", "arn:aws:ec2:*:*:instance/*",
                          "arn:aws:sqs:us-east-1:111122223333:q"]}
        ]}));
        assert_eq!(
            found,
            [
                (
                    "$.Statement[0].Resource".to_owned(),
                    "RESOURCE_SERVICE_MISMATCH"
                ),
                (
                    "$.Statement[1].Resource[2]".to_owned(),
                    "RESOURCE_SERVICE_MISMATCH"
                ),
            ]
        );
    }

    #[test]
    fn documented_cross_service_resources_and_wildcards_are_not_flagged() {
        let found = codes(json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "arn:aws:iam::111122223333:role/r"},
            {"Effect": "Allow", "Action": "ssm:SendCommand",
             "Resource": "arn:aws:ec2:us-east-1:111122223333:instance/*"},
            {"Effect": "Allow", "Action": "ec2:AssociateEnclaveCertificateIamRole",
             "Resource": ["arn:aws:acm:us-east-1:111122223333:certificate/*",
                          "arn:aws:iam::111122223333:role/*"]},
            {"Effect": "Allow", "Action": "*", "Resource": "arn:aws:s3:::b"},
            {"Effect": "Allow", "Action": "*:Get*", "Resource": "arn:aws:s3:::b"},
            {"Effect": "Allow", "Action": "ec2:StartInstances", "Resource": "arn:aws:*:*:*:*"},
            {"Effect": "Allow", "NotAction": "ec2:*", "Resource": "arn:aws:s3:::b"},
            {"Effect": "Allow", "Action": "S3:GetObject", "Resource": "arn:aws:s3:::b/*"}
        ]}));
        assert_eq!(found, []);
    }
}
