"""Issue 13: context keys AWS sets from the authenticated request, each where
the IAM User Guide's global condition keys page says it is present:
`aws:PrincipalOrgID` and `aws:PrincipalOrgPaths` only for a member of the
bundle's organization, `aws:ViaAWSService` and `aws:PrincipalIsAWSService`
(`false`) in every request of a principal calling directly. Through the
real binary's HTTP API."""

import json

from conftest import start_server
from decision_util import ACCOUNT, authorize, write_bundle

ORG = "o-abc123def4"


def bundle(tmp_path):
    grants = {
        "org": [{"Effect": "Allow", "Action": "ec2:DescribeInstances", "Resource": "*",
                 "Condition": {"StringEquals": {"aws:PrincipalOrgID": ORG}}}],
        "path": [{"Effect": "Allow", "Action": "ec2:DescribeInstances", "Resource": "*",
                  "Condition": {"ForAnyValue:StringLike": {
                      "aws:PrincipalOrgPaths": f"{ORG}/r-ab12/ou-ab12-prod/*"}}}],
        "other-ou": [{"Effect": "Allow", "Action": "ec2:DescribeInstances", "Resource": "*",
                      "Condition": {"ForAnyValue:StringLike": {
                          "aws:PrincipalOrgPaths": f"{ORG}/r-ab12/ou-ab12-dev/*"}}}],
        "direct": [{"Effect": "Allow", "Action": "ec2:DescribeInstances", "Resource": "*",
                    "Condition": {"Bool": {"aws:ViaAWSService": "false",
                                           "aws:PrincipalIsAWSService": "false"}}}],
    }
    path = write_bundle(tmp_path / "bundle", grants, "org-keys")
    (path / "organization.json").write_text(json.dumps({
        "Id": ORG, "ManagementAccountId": "999999999999", "Roots": [{"Id": "r-ab12"}],
        "OrganizationalUnits": [
            {"Id": "ou-ab12-prod", "ParentId": "r-ab12", "Name": "prod"},
            {"Id": "ou-ab12-dev", "ParentId": "r-ab12", "Name": "dev"}],
        "Accounts": [{"Id": ACCOUNT, "ParentId": "ou-ab12-prod", "Name": "member"},
                     {"Id": "999999999999", "ParentId": "r-ab12", "Name": "management"}],
        "Policies": [{"Id": "p-FullAWSAccess", "Type": "SERVICE_CONTROL_POLICY",
                      "Content": {"Version": "2012-10-17", "Statement": [
                          {"Effect": "Allow", "Action": "*", "Resource": "*"}]},
                      "Targets": ["r-ab12", "ou-ab12-prod", "ou-ab12-dev", ACCOUNT,
                                  "999999999999"]}]}))
    return path


def test_organization_and_direct_call_keys(tmp_path):
    """issue 13: the organization keys follow the caller's account in the
    bundle's organization; the direct-call keys are false; a context the
    caller's adapter sends still overrides a derived key."""
    server = start_server(tmp_path, "--bundle", str(bundle(tmp_path)), "--no-watch")
    try:
        assert authorize(server, "org", "ec2:DescribeInstances") == "allowed"
        assert authorize(server, "path", "ec2:DescribeInstances") == "allowed"
        assert authorize(server, "other-ou", "ec2:DescribeInstances") == "implicitDeny"
        assert authorize(server, "direct", "ec2:DescribeInstances") == "allowed"
        assert authorize(server, "direct", "ec2:DescribeInstances",
                         context={"aws:ViaAWSService": True}) == "implicitDeny"
    finally:
        server.stop()
