//! The demo bundle built into the binary: `iamgate serve` with no
//! `--bundle` serves it. An EC2-shaped organization with a production and a
//! development account, users, groups, a role with a path, managed and
//! inline policies (one URL-encoded, as the raw API returns them), a
//! permissions boundary, SCPs, a resource policy, an EC2 inventory (team-tagged
//! instances, volumes, subnets, security groups that reference each other,
//! network interfaces, and images and snapshots of the development account
//! shared with production by account, OU, organization, publicly, or not
//! at all), and its own tests.

use crate::bundle::files::BundleFiles;

/// The demo bundle's files.
pub fn files() -> BundleFiles {
    BundleFiles::from_pairs([
        ("manifest.json", include_str!("demo/manifest.json")),
        (
            "iam/111111111111.json",
            include_str!("demo/iam/111111111111.json"),
        ),
        (
            "iam/222222222222.json",
            include_str!("demo/iam/222222222222.json"),
        ),
        ("organization.json", include_str!("demo/organization.json")),
        (
            "resource-policies.json",
            include_str!("demo/resource-policies.json"),
        ),
        (
            "ec2/111111111111/us-east-1/describe-images.json",
            include_str!("demo/ec2/111111111111/us-east-1/describe-images.json"),
        ),
        (
            "ec2/111111111111/us-east-1/describe-instances.json",
            include_str!("demo/ec2/111111111111/us-east-1/describe-instances.json"),
        ),
        (
            "ec2/111111111111/us-east-1/describe-network-interfaces.json",
            include_str!("demo/ec2/111111111111/us-east-1/describe-network-interfaces.json"),
        ),
        (
            "ec2/111111111111/us-east-1/describe-security-groups.json",
            include_str!("demo/ec2/111111111111/us-east-1/describe-security-groups.json"),
        ),
        (
            "ec2/111111111111/us-east-1/describe-snapshots.json",
            include_str!("demo/ec2/111111111111/us-east-1/describe-snapshots.json"),
        ),
        (
            "ec2/111111111111/us-east-1/describe-subnets.json",
            include_str!("demo/ec2/111111111111/us-east-1/describe-subnets.json"),
        ),
        (
            "ec2/111111111111/us-east-1/describe-volumes.json",
            include_str!("demo/ec2/111111111111/us-east-1/describe-volumes.json"),
        ),
        (
            "ec2/222222222222/us-east-1/describe-image-attribute-launch-permission-org.json",
            include_str!(
                "demo/ec2/222222222222/us-east-1/describe-image-attribute-launch-permission-org.json"
            ),
        ),
        (
            "ec2/222222222222/us-east-1/describe-image-attribute-launch-permission-ou.json",
            include_str!(
                "demo/ec2/222222222222/us-east-1/describe-image-attribute-launch-permission-ou.json"
            ),
        ),
        (
            "ec2/222222222222/us-east-1/describe-image-attribute-launch-permission-private.json",
            include_str!(
                "demo/ec2/222222222222/us-east-1/describe-image-attribute-launch-permission-private.json"
            ),
        ),
        (
            "ec2/222222222222/us-east-1/describe-image-attribute-launch-permission-shared.json",
            include_str!(
                "demo/ec2/222222222222/us-east-1/describe-image-attribute-launch-permission-shared.json"
            ),
        ),
        (
            "ec2/222222222222/us-east-1/describe-images.json",
            include_str!("demo/ec2/222222222222/us-east-1/describe-images.json"),
        ),
        (
            "ec2/222222222222/us-east-1/describe-instances.json",
            include_str!("demo/ec2/222222222222/us-east-1/describe-instances.json"),
        ),
        (
            "ec2/222222222222/us-east-1/describe-security-groups.json",
            include_str!("demo/ec2/222222222222/us-east-1/describe-security-groups.json"),
        ),
        (
            "ec2/222222222222/us-east-1/describe-snapshot-attribute-create-volume-permission-private.json",
            include_str!(
                "demo/ec2/222222222222/us-east-1/describe-snapshot-attribute-create-volume-permission-private.json"
            ),
        ),
        (
            "ec2/222222222222/us-east-1/describe-snapshot-attribute-create-volume-permission-public.json",
            include_str!(
                "demo/ec2/222222222222/us-east-1/describe-snapshot-attribute-create-volume-permission-public.json"
            ),
        ),
        (
            "ec2/222222222222/us-east-1/describe-snapshot-attribute-create-volume-permission-shared.json",
            include_str!(
                "demo/ec2/222222222222/us-east-1/describe-snapshot-attribute-create-volume-permission-shared.json"
            ),
        ),
        (
            "ec2/222222222222/us-east-1/describe-snapshots.json",
            include_str!("demo/ec2/222222222222/us-east-1/describe-snapshots.json"),
        ),
        (
            "ec2/222222222222/us-east-1/describe-subnets.json",
            include_str!("demo/ec2/222222222222/us-east-1/describe-subnets.json"),
        ),
        (
            "ec2/222222222222/us-east-1/describe-volumes.json",
            include_str!("demo/ec2/222222222222/us-east-1/describe-volumes.json"),
        ),
        ("tests/bob.json", include_str!("demo/tests/bob.json")),
        ("tests/others.json", include_str!("demo/tests/others.json")),
        ("tests/dev.json", include_str!("demo/tests/dev.json")),
    ])
}

// The demo bundle's tests go through the EC2 mapping, so they live with
// EC2 (`src/ec2/demo_tests.rs`): the bundle does not depend on a service.
