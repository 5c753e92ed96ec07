//! What a request may name, as opposed to what a policy may match: one
//! concrete action (`service:ActionName`) and one resource (`*` or an ARN).
//! A policy pattern may be a wildcard; a request is a fact, so anything
//! that is not a well-formed action or resource is refused before it is
//! decided. An empty resource, for instance, matches `"Resource": "*"` but
//! no Deny on a specific ARN: deciding it would let a caller slip past that
//! Deny by leaving the field out.
//!
//! The grammar follows the Service Authorization Reference and the ARN
//! format of the AWS General Reference:
//! - action: a service prefix and an action name separated by one `:`,
//!   each made of ASCII letters, digits and `-` (e.g. `ec2:RunInstances`,
//!   `vpc-lattice:AssociateViaAWSService-EventsAndStates`); at most 128
//!   characters, IAM's bound on action names (`SimulatePrincipalPolicy`'s
//!   `ActionNames`). Case is free: IAM compares actions case-insensitively.
//! - resource: `*`, or `arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE` with
//!   a lower-case partition (`aws`, `aws-cn`, `aws-us-gov`, ...) and service
//!   prefix, a region that is empty (as in IAM and S3 ARNs) or a Region
//!   name ([`crate::policy::ids`]), an account that is empty, a 12-digit id or
//!   `aws` (AWS-managed resources such as `arn:aws:iam::aws:policy/...`),
//!   and a resource part that is not empty and has no leading or trailing
//!   whitespace (it would name another resource than the one a Deny
//!   names, yet match `Resource: "*"`); no control characters
//!   anywhere; at most 2,048 characters (IAM's `ResourceArns` bound).
//!   The fixed fields are strict because ARN matching is case-sensitive:
//!   `arn:AWS:ec2:...` would match `Resource: "*"` but no Deny written the
//!   way AWS spells ARNs.

use thiserror::Error;

use crate::policy::ids::{AccountId, Region};

/// Longest action name accepted (IAM's `ActionNameType`).
pub const MAX_ACTION_LEN: usize = 128;
/// Longest resource accepted (IAM's `ResourceNameType`).
pub const MAX_RESOURCE_LEN: usize = 2048;

/// Why a request's action or resource cannot be decided.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum NameError {
    #[error("is empty")]
    Empty,
    #[error("is blank")]
    Blank,
    #[error("is longer than {0} characters")]
    TooLong(usize),
    #[error("contains a control character")]
    Control,
    #[error("`{0}` is not `service:ActionName` (ASCII letters, digits and `-`)")]
    Action(String),
    #[error("`{0}` is neither `*` nor an ARN (`arn:partition:service:region:account:resource`)")]
    NotArn(String),
    #[error("`{value}`: the ARN's {field} is invalid ({expected})")]
    ArnField {
        value: String,
        field: &'static str,
        expected: &'static str,
    },
}

/// Checks that `action` names one concrete action.
pub fn check_action(action: &str) -> Result<(), NameError> {
    common(action, MAX_ACTION_LEN)?;
    let word = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    match action.split_once(':') {
        Some((service, name)) if word(service) && word(name) => Ok(()),
        _ => Err(NameError::Action(shown(action))),
    }
}

/// Checks that `resource` is `*` or a well-formed ARN.
pub fn check_resource(resource: &str) -> Result<(), NameError> {
    common(resource, MAX_RESOURCE_LEN)?;
    if resource == "*" {
        return Ok(());
    }
    let arn = crate::policy::arn::Arn::parse(resource)
        .ok_or_else(|| NameError::NotArn(shown(resource)))?;
    let field = |field, expected| NameError::ArnField {
        value: shown(resource),
        field,
        expected,
    };
    let lower = |s: &str| {
        s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    };
    if !arn.partition.starts_with(|c: char| c.is_ascii_lowercase()) || !lower(arn.partition) {
        return Err(field(
            "partition",
            "lower-case letters, digits and `-`, e.g. `aws`",
        ));
    }
    if arn.service.is_empty() || !lower(arn.service) {
        return Err(field("service", "a lower-case service prefix, e.g. `ec2`"));
    }
    if !(arn.region.is_empty() || Region::is_valid(arn.region)) {
        return Err(field("region", "empty or a region name, e.g. `us-east-1`"));
    }
    let account_ok =
        arn.account.is_empty() || arn.account == "aws" || AccountId::is_valid(arn.account);
    if !account_ok {
        return Err(field("account", "empty, a 12-digit account id, or `aws`"));
    }
    if arn.resource.is_empty() {
        return Err(field("resource part", "not empty"));
    }
    if arn.resource.trim().is_empty() {
        return Err(field("resource part", "not blank"));
    }
    // `instance/i-0prod ` is not `instance/i-0prod`: it would miss a Deny
    // on that instance and still match `Resource: "*"`.
    if arn.resource.trim() != arn.resource {
        return Err(field("resource part", "no leading or trailing whitespace"));
    }
    Ok(())
}

/// Checks shared by both names: not empty or blank, bounded, printable.
fn common(s: &str, max: usize) -> Result<(), NameError> {
    if s.is_empty() {
        return Err(NameError::Empty);
    }
    if s.chars().count() > max {
        return Err(NameError::TooLong(max));
    }
    if s.chars().any(char::is_control) {
        return Err(NameError::Control);
    }
    if s.trim().is_empty() {
        return Err(NameError::Blank);
    }
    Ok(())
}

/// A name as quoted in an error: at most 128 characters.
fn shown(s: &str) -> String {
    const MAX: usize = 128;
    match s.char_indices().nth(MAX) {
        Some((at, _)) => format!("{}...", s.get(..at).unwrap_or_default()),
        None => s.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions() {
        for ok in [
            "ec2:RunInstances",
            "EC2:runinstances",
            "s3:GetObject",
            "execute-api:Invoke",
            "vpc-lattice:AssociateViaAWSService-EventsAndStates",
            "iot1click:ListProjects",
        ] {
            assert_eq!(check_action(ok), Ok(()), "{ok}");
        }
        assert_eq!(check_action(""), Err(NameError::Empty));
        assert_eq!(check_action("   "), Err(NameError::Blank));
        assert_eq!(check_action("ec2:Run\tInstances"), Err(NameError::Control));
        assert_eq!(
            check_action(&format!("ec2:{}", "A".repeat(200))),
            Err(NameError::TooLong(MAX_ACTION_LEN))
        );
        for bad in [
            "ec2",
            "ec2:",
            ":RunInstances",
            "ec2:*",
            "ec2:Run*",
            "ec2:Run?nstances",
            "*",
            "ec2:RunInstances ",
            " ec2:RunInstances",
            "ec2::RunInstances",
            "ec2:Run:Instances",
            "ec2:Run Instances",
            "ec2:Run_Instances",
            "ec2:RunInstancés",
        ] {
            assert!(
                matches!(check_action(bad), Err(NameError::Action(_))),
                "{bad}: {:?}",
                check_action(bad)
            );
        }
    }

    #[test]
    fn resources() {
        for ok in [
            "*",
            "arn:aws:ec2:us-east-1:111122223333:instance/i-0abc",
            "arn:aws:ec2:us-east-1::image/ami-0abc",
            "arn:aws:s3:::bucket",
            "arn:aws:s3:::bucket/a key with spaces/ünïcode",
            "arn:aws:iam::aws:policy/AdministratorAccess",
            "arn:aws-us-gov:lambda:us-gov-west-1:111122223333:function:f:alias",
            "arn:aws:s3:::bucket/*",
        ] {
            assert_eq!(check_resource(ok), Ok(()), "{ok}");
        }
        assert_eq!(check_resource(""), Err(NameError::Empty));
        assert_eq!(check_resource(" \t"), Err(NameError::Control));
        assert_eq!(check_resource("   "), Err(NameError::Blank));
        assert_eq!(
            check_resource("arn:aws:s3:::b/\u{7f}"),
            Err(NameError::Control)
        );
        assert_eq!(
            check_resource(&format!("arn:aws:s3:::{}", "k".repeat(3000))),
            Err(NameError::TooLong(MAX_RESOURCE_LEN))
        );
        for bad in [
            "**",
            "arn",
            "arn:aws:ec2",
            " arn:aws:s3:::b",
            "ARN:aws:s3:::b",
            "i-0abc",
        ] {
            assert!(
                matches!(check_resource(bad), Err(NameError::NotArn(_))),
                "{bad}: {:?}",
                check_resource(bad)
            );
        }
        for (bad, what) in [
            ("arn::ec2:us-east-1:111122223333:instance/i-1", "partition"),
            (
                "arn:AWS:ec2:us-east-1:111122223333:instance/i-1",
                "partition",
            ),
            ("arn:aws::us-east-1:111122223333:instance/i-1", "service"),
            ("arn:aws:EC2:us-east-1:111122223333:instance/i-1", "service"),
            ("arn:aws:ec2:US-EAST-1:111122223333:instance/i-1", "region"),
            // One Region rule everywhere (issue 12): a name ends in a number.
            ("arn:aws:ec2:us-east:111122223333:instance/i-1", "region"),
            ("arn:aws:ec2:-:111122223333:instance/i-1", "region"),
            ("arn:aws:ec2:us-east-1:11112222333:instance/i-1", "account"),
            (
                "arn:aws:ec2:us-east-1:111122223333 :instance/i-1",
                "account",
            ),
            ("arn:aws:ec2:us-east-1:*:instance/i-1", "account"),
            ("arn:aws:ec2:us-east-1:111122223333:", "resource part"),
            ("arn:aws:ec2:us-east-1:111122223333:  ", "resource part"),
            (
                "arn:aws:ec2:us-east-1:111122223333:instance/i-1 ",
                "resource part",
            ),
            (
                "arn:aws:ec2:us-east-1:111122223333: instance/i-1",
                "resource part",
            ),
        ] {
            let got = match check_resource(bad) {
                Err(NameError::ArnField { field, .. }) => Some(field),
                _ => None,
            };
            assert_eq!(got, Some(what), "{bad}");
        }
    }

    #[test]
    fn long_values_are_clipped_in_messages() {
        let e = check_resource(&format!("x{}", "y".repeat(1000))).map_err(|e| e.to_string());
        assert!(e.as_ref().is_err_and(|e| e.len() < 250), "{e:?}");
    }
}
