"""Issue 14 (operators' bundle tools): scripts/export-organization.sh run
against a live organization — moto's Organizations API (`moto_server`), the
AWS CLI pointed at it with AWS_ENDPOINT_URL — writes the `organization/`
folder of CLI outputs that iamgate reads: `iamgate bundle check` serves the
exported tree with its SCP (the deny binds an account two OUs down, the
management account is exempt), and a detached SCP, exported again, no
longer binds."""

import json
import os
import pathlib
import socket
import subprocess
import sys
import time

import boto3
import pytest

from conftest import BINARY, ROOT

SCRIPT = ROOT / "scripts" / "export-organization.sh"
VENV_BIN = pathlib.Path(sys.executable).parent


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def moto(tmp_path_factory):
    """A moto server (one for the module: it takes seconds to start); yields
    the environment the AWS CLI and boto3 use."""
    tmp_path = tmp_path_factory.mktemp("moto")
    moto_bin = VENV_BIN / "moto_server"
    assert moto_bin.exists(), "moto[server] is in tests/e2e/requirements.txt"
    port = _free_port()
    log = open(tmp_path / "moto.log", "w")
    proc = subprocess.Popen([str(moto_bin), "-H", "127.0.0.1", "-p", str(port)],
                            stdout=log, stderr=log)
    env = dict(os.environ)
    env.update({
        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
        "AWS_CONFIG_FILE": str(tmp_path / "none"), "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
        "PATH": f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
    })
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.1)
    try:
        yield env
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _iam_file(account):
    """`get-account-authorization-details` of one account: an administrator."""
    return {
        "UserDetailList": [{
            "Path": "/", "UserName": "ops", "UserId": "AIDAEXAMPLEOPS000001",
            "Arn": f"arn:aws:iam::{account}:user/ops",
            "UserPolicyList": [{"PolicyName": "admin", "PolicyDocument": {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}}],
            "GroupList": [], "AttachedManagedPolicies": [], "Tags": []}],
        "GroupDetailList": [], "RoleDetailList": [], "Policies": []}


def _tests_file(account, vpc_delete):
    return {"principal": {"arn": f"arn:aws:iam::{account}:user/ops"}, "tests": [
        {"name": "describe instances", "action": "ec2:DescribeInstances",
         "resource": "*", "expect": "allowed"},
        {"name": "delete a VPC", "action": "ec2:DeleteVpc",
         "resource": f"arn:aws:ec2:us-east-1:{account}:vpc/vpc-0123456789abcdef0",
         "expect": vpc_delete}]}


def _export(env, bundle):
    out = subprocess.run([str(SCRIPT), str(bundle)], env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return bundle / "organization"


def _check(bundle):
    out = subprocess.run([str(BINARY), "bundle", "check", "--json", str(bundle)],
                         capture_output=True, text=True, timeout=60)
    return out.returncode, json.loads(out.stdout)


def test_export_organization_from_the_cli_is_served(moto, tmp_path):
    """issue 14, operators' bundle tools: organization.json in the CLI's shapes."""
    orgs = boto3.client("organizations", endpoint_url=moto["AWS_ENDPOINT_URL"],
                        region_name="us-east-1", aws_access_key_id="testing",
                        aws_secret_access_key="testing")
    mgmt = orgs.create_organization(FeatureSet="ALL")["Organization"]["MasterAccountId"]
    root = orgs.list_roots()["Roots"][0]["Id"]
    orgs.enable_policy_type(RootId=root, PolicyType="SERVICE_CONTROL_POLICY")
    prod = orgs.create_organizational_unit(ParentId=root, Name="prod")["OrganizationalUnit"]["Id"]
    team = orgs.create_organizational_unit(ParentId=prod, Name="team")["OrganizationalUnit"]["Id"]
    account = orgs.create_account(AccountName="app", Email="app@example.com")[
        "CreateAccountStatus"]["AccountId"]
    orgs.move_account(AccountId=account, SourceParentId=root, DestinationParentId=team)
    scp = orgs.create_policy(
        Name="NoVpcTeardown", Description="", Type="SERVICE_CONTROL_POLICY",
        Content=json.dumps({"Version": "2012-10-17", "Statement": [
            {"Effect": "Deny", "Action": "ec2:DeleteVpc", "Resource": "*"}]}),
    )["Policy"]["PolicySummary"]["Id"]
    orgs.attach_policy(PolicyId=scp, TargetId=prod)
    orgs.attach_policy(PolicyId=scp, TargetId=mgmt)

    bundle = tmp_path / "bundle"
    (bundle / "iam").mkdir(parents=True)
    (bundle / "tests").mkdir()
    for acct in (account, mgmt):
        (bundle / "iam" / f"{acct}.json").write_text(json.dumps(_iam_file(acct)))
    (bundle / "tests" / "app.json").write_text(json.dumps(_tests_file(account, "explicitDeny")))
    # The management account is exempt from SCPs, even one attached to it.
    (bundle / "tests" / "mgmt.json").write_text(json.dumps(_tests_file(mgmt, "allowed")))

    folder = _export(moto, bundle)
    # Verbatim CLI outputs: the parent is only in the folder name.
    described = json.loads((folder / "policies" / scp / "describe-policy.json").read_text())
    assert described["Policy"]["PolicySummary"]["Id"] == scp
    assert isinstance(described["Policy"]["Content"], str)
    targets = json.loads((folder / "policies" / scp / "list-targets-for-policy.json").read_text())
    assert {t["TargetId"] for t in targets["Targets"]} == {prod, mgmt}
    accounts = json.loads(
        (folder / "parents" / team / "list-accounts-for-parent.json").read_text())
    assert [a["Id"] for a in accounts["Accounts"]] == [account]
    assert not list(bundle.glob(".organization*")), "no temporary folder left"

    code, verdict = _check(bundle)
    assert (code, verdict["ok"]) == (0, True), verdict
    assert verdict["counts"]["principals"] == 2, verdict
    # The same tests, one by one, against the bundle they live in.
    out = subprocess.run([str(BINARY), "test", str(bundle / "tests")],
                         capture_output=True, text=True, timeout=60)
    assert (out.returncode, out.stdout) == (0, "4 passed, 0 failed\n"), out

    # Detached, exported again: the deny is gone and the bundle's test says so.
    orgs.detach_policy(PolicyId=scp, TargetId=prod)
    _export(moto, bundle)
    code, verdict = _check(bundle)
    assert code == 1, verdict
    assert verdict["error"]["kind"] == "test_failed", verdict
    assert verdict["error"]["test"] == "delete a VPC", verdict
    assert verdict["error"]["got"] == "allowed", verdict


def test_export_refuses_a_bundle_with_organization_json(moto, tmp_path):
    """issue 14: a bundle holds organization.json or organization/, not both."""
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "organization.json").write_text("{}")
    out = subprocess.run([str(SCRIPT), str(bundle)], env=moto, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 2, out
    assert "not both" in out.stderr
    assert not (bundle / "organization").exists()
