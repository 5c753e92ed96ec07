//! EC2 permission attributes: whether an AMI's launch permission or a
//! snapshot's create-volume permission lets a caller's account use it.
//! These checks come on top of the caller's own IAM allow (see
//! [`super::mapping::PermissionCheck`]). Pure: the caller's organization
//! membership is handed in ([`OrgMembership`], built by the bundle snapshot).
//!
//! Rules (EC2 User Guide, "Shared AMIs" and "Share an Amazon EBS snapshot"):
//! - the owner account may always use its own image or snapshot;
//! - `Group: all` (and, for images, `Public: true`) lets every account;
//! - `UserId` lets that account;
//! - `OrganizationArn` lets every account of that organization;
//! - `OrganizationalUnitArn` lets every account under that OU, directly or
//!   through nested OUs.
//!
//! An image or snapshot the inventory does not know is never usable across
//! accounts: without its owner and grants nothing can be proven, so the
//! check denies (see [`super::mapping::PermissionCheck::permits`]).

use super::inventory::{Attributes, Grant, Resource};

// The membership is organization data, compiled by the bundle; EC2 only
// reads it.
pub use crate::bundle::organization::OrgMembership;

/// Whether `caller_account` may launch the image / create a volume from the
/// snapshot `resource`: the owner, or a grant that covers the caller.
pub fn permits(
    resource: &Resource,
    caller_account: &str,
    membership: Option<&OrgMembership>,
) -> bool {
    if resource.account == caller_account {
        return true;
    }
    if matches!(&resource.attributes, Attributes::Image(i) if i.public == Some(true)) {
        return true;
    }
    resource
        .attributes
        .grants()
        .iter()
        .any(|g| grant_covers(g, caller_account, membership))
}

/// Whether one grant covers the caller's account.
pub fn grant_covers(
    grant: &Grant,
    caller_account: &str,
    membership: Option<&OrgMembership>,
) -> bool {
    match grant {
        Grant::All => true,
        Grant::Account(a) => a == caller_account,
        Grant::Organization(arn) => membership.is_some_and(|m| m.organization_arn == *arn),
        Grant::OrganizationalUnit(arn) => {
            membership.is_some_and(|m| m.ou_arns.iter().any(|o| o == arn))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ec2::inventory::ImageAttributes;

    const ORG: &str = "arn:aws:organizations::999999999999:organization/o-demo1234";
    const OU_OUTER: &str = "arn:aws:organizations::999999999999:ou/o-demo1234/ou-root-outer";
    const OU_INNER: &str = "arn:aws:organizations::999999999999:ou/o-demo1234/ou-root-inner";

    fn image(owner: &str, public: Option<bool>, grants: Vec<Grant>) -> Resource {
        Resource {
            id: "ami-1".into(),
            account: owner.into(),
            region: "us-east-1".into(),
            tags: Vec::new(),
            attributes: Attributes::Image(ImageAttributes {
                public,
                grants,
                ..ImageAttributes::default()
            }),
        }
    }

    fn member() -> OrgMembership {
        OrgMembership {
            organization_arn: ORG.into(),
            ou_arns: vec![OU_OUTER.into(), OU_INNER.into()],
        }
    }

    #[test]
    fn owner_always() {
        let r = image("222222222222", Some(false), Vec::new());
        assert!(permits(&r, "222222222222", None));
        assert!(!permits(&r, "111111111111", None));
        assert!(!permits(&r, "111111111111", Some(&member())));
    }

    #[test]
    fn public_and_all() {
        assert!(permits(&image("2", Some(true), Vec::new()), "1", None));
        assert!(permits(&image("2", None, vec![Grant::All]), "1", None));
    }

    #[test]
    fn account_grants() {
        let r = image("2", None, vec![Grant::Account("1".into())]);
        assert!(permits(&r, "1", None));
        assert!(!permits(&r, "3", None));
    }

    #[test]
    fn organization_grants() {
        let r = image("2", None, vec![Grant::Organization(ORG.into())]);
        assert!(permits(&r, "1", Some(&member())));
        assert!(!permits(&r, "1", None), "no membership, no org grant");
        let other = OrgMembership {
            organization_arn: "arn:aws:organizations::888888888888:organization/o-other".into(),
            ou_arns: Vec::new(),
        };
        assert!(!permits(&r, "1", Some(&other)));
    }

    #[test]
    fn ou_grants_cover_nested_accounts() {
        let outer = image("2", None, vec![Grant::OrganizationalUnit(OU_OUTER.into())]);
        let inner = image("2", None, vec![Grant::OrganizationalUnit(OU_INNER.into())]);
        assert!(permits(&outer, "1", Some(&member())));
        assert!(permits(&inner, "1", Some(&member())));
        let only_outer = OrgMembership {
            organization_arn: ORG.into(),
            ou_arns: vec![OU_OUTER.into()],
        };
        assert!(permits(&outer, "1", Some(&only_outer)));
        assert!(!permits(&inner, "1", Some(&only_outer)));
        assert!(!permits(&outer, "1", None));
    }
}
