"""Kubernetes webhooks (issue 16): the API server's AdmissionReview and
SubjectAccessReview requests, posted as the API server posts them (JSON,
`application/json`, a 10 s timeout, over TLS with a client certificate) to
the real binary's `--webhook-listen`, for the ACK EC2 controller's kinds.

Objects are validated against the ACK EC2 controller's own CRD schemas
(tests/e2e/k8s/crds, copied from aws-controllers-k8s/ec2-controller);
SubjectAccessReviews are built with the official `kubernetes` Python
client's models. No API server can run here, so these requests stand in
for it; everything on iamgate's side is real.

Principals (the built-in demo bundle, as tests/e2e/test_ec2_envoy.py uses
it): bob (team blue: launches t3 instances tagged team=blue, never
terminates), alice (administrator; explicitly denied DeleteVpc, the default
security group's deletion and public subnets' deletion in this test's
bundle, and launches from 203.0.113.0/24), the `ops-automation` role (Describe and StopInstances). Users are
identified through the AWS IAM authenticator's `extra` or through an
`aws-auth` mapping read in reverse.
"""

import copy
import re
import json
import pathlib
import socket
import ssl
import uuid

import jsonschema
import pytest
import requests
import yaml
from kubernetes import client as k8s

from test_ec2_envoy import (  # noqa: F401  (fixture)
    ALICE, BLUE_WEB, BOB, PROD, PROD_AMI, SUBNET, Ec2Stack, envoy_bin, error,
)
from control_util import control_post
from test_tls import make_ca, make_leaf

CRDS = pathlib.Path(__file__).resolve().parent / "k8s" / "crds"
GROUP, VERSION = "ec2.services.k8s.aws", "v1alpha1"
CONTROLLER = "system:serviceaccount:ack-system:ack-ec2-controller"
OPS_ROLE = f"arn:aws:iam::{PROD}:role/service/ops-automation"
VPC = "vpc-0a111000000000001"
SG_DEFAULT, SG_APP = "sg-0a111000000000001", "sg-0a111000000000003"

AWS_AUTH = f"""
apiVersion: v1
kind: ConfigMap
metadata:
  name: aws-auth
  namespace: kube-system
data:
  mapRoles: |
    - rolearn: {OPS_ROLE}
      username: ops:{{{{SessionNameRaw}}}}
      groups: [ops]
  mapUsers: |
    - userarn: {BOB}
      username: bob
      groups: [developers]
    - userarn: {ALICE}
      username: alice
"""

KINDS = {  # kind -> (plural, CRD file)
    "Instance": ("instances", "ec2.services.k8s.aws_instances.yaml"),
    "SecurityGroup": ("securitygroups", "ec2.services.k8s.aws_securitygroups.yaml"),
    "Subnet": ("subnets", "ec2.services.k8s.aws_subnets.yaml"),
    "VPC": ("vpcs", "ec2.services.k8s.aws_vpcs.yaml"),
}


def schema(kind):
    doc = yaml.safe_load((CRDS / KINDS[kind][1]).read_text())
    (version,) = [v for v in doc["spec"]["versions"] if v["name"] == VERSION]
    return version["schema"]["openAPIV3Schema"]


def ack_object(kind, name, spec, status=None, namespace="team-a", annotations=None, labels=None):
    """An ACK object, checked against its CRD's openAPIV3Schema."""
    meta = k8s.V1ObjectMeta(name=name, namespace=namespace, annotations=annotations,
                            labels=labels, uid=str(uuid.uuid4()))
    obj = {"apiVersion": f"{GROUP}/{VERSION}", "kind": kind,
           "metadata": k8s.ApiClient().sanitize_for_serialization(meta), "spec": spec}
    if status is not None:
        obj["status"] = status
    jsonschema.validate(obj, schema(kind))
    return obj


# The users, as the API server describes them after the AWS IAM authenticator.
def extra_user(arn, username="kubernetes-user", session=""):
    canonical = arn
    if ":assumed-role/" in arn:
        account, rest = arn.split(":")[4], arn.split(":assumed-role/", 1)[1]
        canonical = f"arn:aws:iam::{account}:role/{rest.split('/')[0]}"
    return {"username": username, "uid": "aws-iam-authenticator:" + arn,
            "groups": ["system:authenticated"],
            "extra": {"arn": [arn], "canonicalArn": [canonical], "sessionName": [session],
                      "accessKeyId": ["AKIAEXAMPLEEXAMPLE01"]}}


def mapped_user(username, groups):
    return {"username": username, "uid": "u-" + username,
            "groups": [*groups, "system:authenticated"]}


BOB_EXTRA = extra_user(BOB)
BOB_AWS_AUTH = mapped_user("bob", ["developers"])
ALICE_EXTRA = extra_user(ALICE)
OPS_AWS_AUTH = mapped_user("ops:ci-42", ["ops"])
MALLORY = mapped_user("mallory", [])


def admission_review(operation, obj=None, old=None, user=BOB_EXTRA, subresource="", dry_run=False):
    """An AdmissionReview exactly as the API server sends it (admission.k8s.io/v1)."""
    some = obj or old
    kind = some["kind"]
    plural = KINDS.get(kind, (kind.lower() + "s",))[0]
    options = {"CREATE": "CreateOptions", "UPDATE": "UpdateOptions", "DELETE": "DeleteOptions"}
    request = {
        "uid": str(uuid.uuid4()),
        "kind": {"group": GROUP, "version": VERSION, "kind": kind},
        "resource": {"group": GROUP, "version": VERSION, "resource": plural},
        "requestKind": {"group": GROUP, "version": VERSION, "kind": kind},
        "requestResource": {"group": GROUP, "version": VERSION, "resource": plural},
        "name": some["metadata"]["name"],
        "namespace": some["metadata"]["namespace"],
        "operation": operation,
        "userInfo": user,
        "object": obj,
        "oldObject": old,
        "dryRun": dry_run,
        "options": {"apiVersion": "meta.k8s.io/v1", "kind": options[operation]},
    }
    if subresource:
        request["subResource"] = subresource
        request["requestSubResource"] = subresource
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}


def access_review(user, verb, resource=None, name="", namespace="team-a", group=GROUP,
                  subresource="", path=None):
    """A SubjectAccessReview built with the kubernetes client's models."""
    if path is not None:
        attrs = {"non_resource_attributes": k8s.V1NonResourceAttributes(path=path, verb=verb)}
    else:
        attrs = {"resource_attributes": k8s.V1ResourceAttributes(
            group=group, version=VERSION if group == GROUP else "v1", resource=resource,
            verb=verb, namespace=namespace, name=name or None, subresource=subresource or None)}
    sar = k8s.V1SubjectAccessReview(
        api_version="authorization.k8s.io/v1", kind="SubjectAccessReview",
        spec=k8s.V1SubjectAccessReviewSpec(
            user=user["username"], groups=user["groups"], extra=user.get("extra"),
            uid=user["uid"], **attrs))
    return k8s.ApiClient().sanitize_for_serialization(sar)


class Webhook:
    """iamgate with the webhook listener, the EC2 Query API behind Envoy and
    the gRPC API, on one snapshot."""

    def __init__(self, tmp_path, envoy_bin):
        make_ca(tmp_path, "ca")
        make_leaf(tmp_path, "server", "ca", "IP:127.0.0.1,DNS:iamgate.iamgate.svc")
        make_leaf(tmp_path, "apiserver", "ca", "DNS:kube-apiserver", client=True)
        (tmp_path / "aws-auth.yaml").write_text(AWS_AUTH)
        self.pki = tmp_path
        self.decision_log = tmp_path / "decisions.jsonl"
        self.stack = Ec2Stack(tmp_path, envoy_bin, bundle_edit=alice_denials, args=[
            "--webhook-listen", "127.0.0.1:0",
            "--webhook-tls-cert", str(tmp_path / "server.pem"),
            "--webhook-tls-key", str(tmp_path / "server.key"),
            "--webhook-client-ca", str(tmp_path / "ca.pem"),
            "--webhook-controller-user", CONTROLLER,
            "--webhook-aws-auth", str(tmp_path / "aws-auth.yaml"),
            "--webhook-region", "us-east-1",
            "--webhook-resource-action", "eks:AccessKubernetesApi",
            "--webhook-resource-arn", f"arn:aws:eks:us-east-1:{PROD}:cluster/prod",
            "--webhook-non-resource-action", "eks:AccessKubernetesApi",
            "--webhook-non-resource-arn", f"arn:aws:eks:us-east-1:{PROD}:cluster/prod{{path}}",
            "--webhook-name-tag", "services.k8s.aws/name",
            "--decision-log", str(self.decision_log),
        ])
        self.server = self.stack.server
        self.url = "https://" + self.server.addrs["webhook"]

    def post(self, path, body, raw=None, headers=None, cert=True):
        h = {"content-type": "application/json", "accept": "application/json"}
        h.update(headers or {})
        data = raw if raw is not None else json.dumps(body)
        return requests.post(self.url + path, data=data, headers=h, timeout=10,
                             verify=str(self.pki / "ca.pem"),
                             cert=(str(self.pki / "apiserver.pem"), str(self.pki / "apiserver.key"))
                             if cert else None)

    def admit(self, review):
        r = self.post("/admission", review)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["apiVersion"] == "admission.k8s.io/v1" and body["kind"] == "AdmissionReview"
        response = body["response"]
        assert response["uid"] == review["request"]["uid"]
        return response

    def authorize(self, review):
        r = self.post("/authorize", review)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["kind"] == "SubjectAccessReview"
        return body["status"]


def alice_denials(doc):
    """Explicit denies for alice on each network kind's deletion."""
    (alice,) = [u for u in doc["UserDetailList"] if u["UserName"] == "alice"]
    alice["UserPolicyList"] = [{"PolicyName": "KeepTheNetwork", "PolicyDocument": {
        "Version": "2012-10-17", "Statement": [
            {"Sid": "KeepVpcs", "Effect": "Deny", "Action": "ec2:DeleteVpc", "Resource": "*"},
            {"Sid": "KeepDefaultGroups", "Effect": "Deny", "Action": "ec2:DeleteSecurityGroup",
             "Resource": f"arn:aws:ec2:*:{PROD}:security-group/{SG_DEFAULT}"},
            {"Sid": "KeepPublicSubnets", "Effect": "Deny", "Action": "ec2:DeleteSubnet",
             "Resource": "*", "Condition": {"StringEquals": {"ec2:ResourceTag/tier": "public"}}},
            # Reads a key no Kubernetes object gives (the controller's
            # address is not the user's): admission warns about it.
            {"Sid": "NoLaunchFromTheGuestNetwork", "Effect": "Deny", "Action": "ec2:RunInstances",
             "Resource": "*", "Condition": {"IpAddress": {"aws:SourceIp": "203.0.113.0/24"}}},
        ]}}]


@pytest.fixture(scope="module")
def hook(tmp_path_factory, envoy_bin):
    w = Webhook(tmp_path_factory.mktemp("k8s"), envoy_bin)
    yield w
    w.stack.close()


def instance(instance_type="t3.micro", tags=(("team", "blue"),), status=None, **spec):
    body = {"imageID": PROD_AMI, "instanceType": instance_type, "subnetID": SUBNET,
            "tags": [{"key": k, "value": v} for k, v in tags], **spec}
    return ack_object("Instance", "web", body, status=status)


def denied(response, code=403):
    assert response["allowed"] is False, response
    assert response["status"]["code"] == code, response
    return response["status"]["message"]


# ---- admission: Instance -------------------------------------------------------

@pytest.mark.parametrize("user", [BOB_EXTRA, BOB_AWS_AUTH], ids=["extra", "aws-auth"])
def test_instance_create_allow_implicit_and_explicit_deny(hook, user):
    ok = hook.admit(admission_review("CREATE", instance(), user=user))
    assert ok["allowed"] is True, ok
    ann = ok["auditAnnotations"]
    assert ann["principal"] == BOB
    assert ann["principal-source"] == ("extra" if "extra" in user else "aws-auth")
    assert ann["revision"].startswith("demo-1+sha256:")
    assert ann["decision-id"].count(",") >= 3  # instance, image, subnet, volume, tag-on-create...

    big = hook.admit(admission_review("CREATE", instance("m5.xlarge"), user=user))
    message = denied(big)
    assert message.startswith("You are not authorized to perform this operation. User: " + BOB)
    assert (f"is not authorized to perform: ec2:RunInstances on resource: "
            f"arn:aws:ec2:us-east-1:{PROD}:instance/* because no identity-based policy allows "
            "the ec2:RunInstances action") in message, message
    assert "Encoded authorization failure message: " in message
    assert big["auditAnnotations"]["decision-id"]

    untagged = hook.admit(admission_review("CREATE", instance(tags=()), user=user))
    assert "ec2:RunInstances" in denied(untagged)

    # A GPU type is not in bob's list either; a tag key outside it is refused
    # through aws:TagKeys exactly as on the Query API.
    other = hook.admit(admission_review("CREATE", instance(tags=(("team", "blue"), ("env", "x"))),
                                        user=user))
    denied(other)


def test_instance_delete_update_and_the_controllers_writes(hook):
    created = instance(status={"instanceID": BLUE_WEB})
    # Explicit deny (bob's NoTerminate), worded as EC2 words it.
    message = denied(hook.admit(admission_review("DELETE", old=created, user=BOB_EXTRA)))
    assert (f"perform: ec2:TerminateInstances on resource: arn:aws:ec2:us-east-1:{PROD}:instance/"
            f"{BLUE_WEB} with an explicit deny in an identity-based policy") in message, message
    assert hook.admit(admission_review("DELETE", old=created, user=ALICE_EXTRA))["allowed"]

    # Labels, annotations, status, finalizers: no EC2 call.
    relabeled = copy.deepcopy(created)
    relabeled["metadata"]["labels"] = {"tier": "web"}
    relabeled["metadata"]["finalizers"] = ["finalizers.ec2.services.k8s.aws/Instance"]
    r = hook.admit(admission_review("UPDATE", relabeled, created, user=MALLORY))
    assert r["allowed"] is True and "no-ec2-call" in r["auditAnnotations"], r
    assert r["auditAnnotations"]["revision"].startswith("demo-1+sha256:")

    # A tag change is CreateTags / DeleteTags on the instance: bob may tag
    # only on launch (ec2:CreateAction), alice may.
    retagged = copy.deepcopy(created)
    retagged["spec"]["tags"] = [{"key": "team", "value": "blue"}, {"key": "env", "value": "dev"}]
    message = denied(hook.admit(admission_review("UPDATE", retagged, created, user=BOB_EXTRA)))
    assert f"ec2:CreateTags on resource: arn:aws:ec2:us-east-1:{PROD}:instance/{BLUE_WEB}" in message
    assert hook.admit(admission_review("UPDATE", retagged, created, user=ALICE_EXTRA))["allowed"]

    # A spec change the controller applies with a call iamgate does not map.
    resized = copy.deepcopy(created)
    resized["spec"]["instanceType"] = "t3.large"
    message = denied(hook.admit(admission_review("UPDATE", resized, created, user=ALICE_EXTRA)), 400)
    assert "spec.instanceType" in message

    # The controller's own writes and status updates pass.
    status = copy.deepcopy(created)
    status["status"]["state"] = {"name": "running"}
    assert hook.admit(admission_review("UPDATE", status, created, user=mapped_user(CONTROLLER, [])))["allowed"]
    assert hook.admit(admission_review("UPDATE", status, created, user=MALLORY,
                                       subresource="status"))["allowed"]


def test_unmapped_and_unreadable_users_are_denied(hook):
    message = denied(hook.admit(admission_review("CREATE", instance(), user=MALLORY)))
    assert "no IAM principal" in message and "mallory" in message
    # aws-auth: bob's username without the group the mapping grants.
    message = denied(hook.admit(admission_review("CREATE", instance(),
                                                 user=mapped_user("bob", []))))
    assert "developers" in message
    # extra that contradicts itself is never trusted.
    forged = extra_user(BOB)
    forged["extra"]["canonicalArn"] = [ALICE]
    assert "canonicalArn" in denied(hook.admit(admission_review("CREATE", instance(), user=forged)))
    # The role session read back through {{SessionNameRaw}} is the role's.
    message = denied(hook.admit(admission_review("CREATE", instance(), user=OPS_AWS_AUTH)))
    assert f"User: arn:aws:sts::{PROD}:assumed-role/ops-automation/ci-42 is not authorized" in message


def test_instance_profile_needs_pass_role_and_key_pairs_resolve(hook):
    profiled = instance(iamInstanceProfile={"name": "app"})
    r = hook.admit(admission_review("CREATE", profiled, user=ALICE_EXTRA))
    assert r["allowed"], r
    assert any("`aws:SourceIp`" in w for w in r["warnings"]), r
    # bob's boundary does not allow iam:PassRole.
    message = denied(hook.admit(admission_review("CREATE", profiled, user=BOB_EXTRA)))
    assert "iam:PassRole" in message and "role/service/ops-automation" in message
    # A key pair the inventory does not hold: EC2's NotFound, never an allow.
    message = denied(hook.admit(admission_review("CREATE", instance(keyName="nope"),
                                                 user=ALICE_EXTRA)), 400)
    assert "InvalidKeyPair.NotFound" in message


# ---- admission: SecurityGroup, Subnet, VPC --------------------------------------

NETWORK = [
    # kind, spec, status of the existing resource (for UPDATE / DELETE)
    ("SecurityGroup", {"name": "web-new", "description": "web tier", "vpcID": VPC,
                       "tags": [{"key": "team", "value": "blue"}]},
     {"id": SG_DEFAULT}),
    ("Subnet", {"vpcID": VPC, "cidrBlock": "10.11.9.0/24", "availabilityZone": "us-east-1a",
                "tags": [{"key": "team", "value": "blue"}]},
     {"subnetID": SUBNET}),
    ("VPC", {"cidrBlocks": ["10.20.0.0/16"], "tags": [{"key": "team", "value": "blue"}]},
     {"vpcID": VPC}),
]


@pytest.mark.parametrize("kind,spec,status", NETWORK, ids=[n[0] for n in NETWORK])
def test_network_kinds_create_update_delete(hook, kind, spec, status):
    new = ack_object(kind, "net", spec)
    # Create: alice (admin) yes; bob's boundary has no such action: implicit.
    r = hook.admit(admission_review("CREATE", new, user=ALICE_EXTRA))
    assert r["allowed"], r
    message = denied(hook.admit(admission_review("CREATE", new, user=BOB_AWS_AUTH)))
    assert "because no permissions boundary allows" in message or "because no" in message, message

    existing = ack_object(kind, "net", spec, status=status)
    retagged = copy.deepcopy(existing)
    retagged["spec"]["tags"] = [{"key": "team", "value": "red"}]
    r = hook.admit(admission_review("UPDATE", retagged, existing, user=ALICE_EXTRA))
    assert r["allowed"], r
    assert "ec2:CreateTags" in denied(hook.admit(admission_review("UPDATE", retagged, existing,
                                                                  user=BOB_EXTRA)))

    # Delete: alice's explicit denies in this bundle (VPCs, the default
    # group, public subnets).
    message = denied(hook.admit(admission_review("DELETE", old=existing, user=ALICE_EXTRA)))
    assert "with an explicit deny in an identity-based policy" in message, message
    # An object whose resource was never created needs no call.
    r = hook.admit(admission_review("DELETE", old=new, user=BOB_EXTRA))
    assert r["allowed"] and "no-ec2-call" in r["auditAnnotations"], r


def test_security_group_rule_changes_authorize_and_revoke(hook):
    rules = [{"ipProtocol": "tcp", "fromPort": 22, "toPort": 22,
              "ipRanges": [{"cidrIP": "10.0.0.0/8"}]}]
    old = ack_object("SecurityGroup", "app", {"name": "app", "description": "app",
                                              "ingressRules": rules}, status={"id": SG_APP})
    new = copy.deepcopy(old)
    new["spec"]["ingressRules"] = [{"ipProtocol": "tcp", "fromPort": 443, "toPort": 443,
                                    "ipRanges": [{"cidrIP": "0.0.0.0/0"}]}]
    jsonschema.validate(new, schema("SecurityGroup"))
    r = hook.admit(admission_review("UPDATE", new, old, user=ALICE_EXTRA))
    assert r["allowed"], r
    assert r["auditAnnotations"]["decision-id"].count(",") >= 1  # authorize + revoke
    message = denied(hook.admit(admission_review("UPDATE", new, old, user=BOB_EXTRA)))
    assert f"ec2:AuthorizeSecurityGroupIngress on resource: arn:aws:ec2:us-east-1:{PROD}:security-group/{SG_APP}" in message


def test_attribute_changes_are_modify_calls(hook):
    old = ack_object("Subnet", "pub", {"vpcID": VPC, "cidrBlock": "10.11.1.0/24",
                                       "mapPublicIPOnLaunch": False}, status={"subnetID": SUBNET})
    new = copy.deepcopy(old)
    new["spec"]["mapPublicIPOnLaunch"] = True
    jsonschema.validate(new, schema("Subnet"))
    assert hook.admit(admission_review("UPDATE", new, old, user=ALICE_EXTRA))["allowed"]
    message = denied(hook.admit(admission_review("UPDATE", new, old, user=BOB_EXTRA)))
    assert f"ec2:ModifySubnetAttribute on resource: arn:aws:ec2:us-east-1:{PROD}:subnet/{SUBNET}" in message


def test_region_and_account_come_from_ack_annotations(hook):
    other = ack_object("VPC", "eu", {"cidrBlocks": ["10.30.0.0/16"]},
                       annotations={"services.k8s.aws/region": "ap-south-1"})
    # The demo's SCP allows production only us-east-1 and eu-west-1.
    message = denied(hook.admit(admission_review("CREATE", other, user=ALICE_EXTRA)))
    assert f"arn:aws:ec2:ap-south-1:{PROD}:vpc/*" in message
    assert "service control policy" in message, message
    bad = ack_object("VPC", "eu", {"cidrBlocks": ["10.30.0.0/16"]},
                     annotations={"services.k8s.aws/owner-account-id": "12"})
    assert "owner-account-id" in denied(hook.admit(admission_review("CREATE", bad, user=ALICE_EXTRA)), 400)


# ---- malformed reviews -----------------------------------------------------------

def test_malformed_reviews_are_clear_errors_never_allows(hook):
    r = hook.post("/admission", None, raw="{not json")
    assert r.status_code == 400 and "AdmissionReview" in r.json()["error"]["message"]
    r = hook.post("/admission", {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"})
    assert r.status_code == 400 and "request" in r.text
    # Readable uid: answered, denied, with what is wrong.
    review = admission_review("CREATE", instance())
    review["apiVersion"] = "admission.k8s.io/v1beta1"
    resp = hook.admit(review)
    assert "apiVersion" in denied(resp, 400)
    review = admission_review("CREATE", instance())
    review["request"]["userInfo"] = "bob"
    assert "userInfo" in denied(hook.admit(review), 400)
    review = admission_review("CREATE", instance())
    review["request"]["object"]["spec"]["subnetRef"] = {"from": {"name": "prod-a"}}
    assert "spec.subnetRef" in denied(hook.admit(review), 400)
    review = admission_review("CREATE", instance())
    review["request"]["kind"]["kind"] = "ElasticIPAddress"
    assert "ElasticIPAddress" in denied(hook.admit(review), 400)
    review = admission_review("CREATE", instance())
    review["request"]["object"]["spec"] = "t3.micro"
    assert "spec" in denied(hook.admit(review), 400)
    r = hook.post("/authorize", {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
                                 "spec": {"user": "bob"}})
    assert r.status_code == 400 and "resourceAttributes" in r.text
    r = hook.post("/admission", None, raw=json.dumps(admission_review("CREATE", instance())),
                  headers={"content-type": "text/plain"})
    assert r.status_code == 415
    r = hook.post("/admission", None, raw="[" * 100 + "]" * 100)
    assert r.status_code == 400
    # Over the body limit: 413, or the connection closed before the whole
    # body was sent; never an answer that admits.
    try:
        r = hook.post("/admission", None, raw=" " * (2 * 1024 * 1024))
        assert r.status_code == 413
    except requests.exceptions.ConnectionError:
        pass
    assert requests.get(hook.server.admin + "/readyz", timeout=5).status_code == 200


def test_https_only_with_the_api_servers_client_certificate(hook):
    host, port = hook.server.addrs["webhook"].rsplit(":", 1)
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.post(f"http://{host}:{port}/admission", json={}, timeout=5)
    # mTLS: a client without the API server's certificate cannot connect.
    with pytest.raises(requests.exceptions.RequestException):
        hook.post("/admission", admission_review("CREATE", instance()), cert=False)
    ctx = ssl.create_default_context(cafile=str(hook.pki / "ca.pem"))
    ctx.load_cert_chain(str(hook.pki / "apiserver.pem"), str(hook.pki / "apiserver.key"))
    with socket.create_connection((host, int(port)), timeout=5) as s:
        with ctx.wrap_socket(s, server_hostname="iamgate.iamgate.svc") as t:
            assert t.version() in ("TLSv1.2", "TLSv1.3")


# ---- SubjectAccessReview -----------------------------------------------------------

def test_access_reviews_allow_deny_and_no_opinion(hook):
    # get/list/watch -> Describe*: allowed, with the deciding statement.
    s = hook.authorize(access_review(BOB_EXTRA, "list", "instances"))
    assert s["allowed"] is True and not s.get("denied"), s
    assert "ec2:DescribeInstances" in s["reason"] and "statement" in s["reason"]
    # delete -> TerminateInstances: bob's explicit deny stops the API server.
    s = hook.authorize(access_review(BOB_AWS_AUTH, "delete", "instances", name="web"))
    assert s["allowed"] is False and s["denied"] is True, s
    assert "ec2:TerminateInstances" in s["reason"] and "explicitDeny" in s["reason"]
    assert "Sid NoTerminate" in s["reason"], s
    # create -> RunInstances needs the request's tags: implicit deny = no opinion.
    s = hook.authorize(access_review(BOB_EXTRA, "create", "instances"))
    assert s["allowed"] is False and not s.get("denied"), s
    assert "implicitDeny" in s["reason"]
    s = hook.authorize(access_review(ALICE_EXTRA, "create", "vpcs"))
    assert s["allowed"] is True, s
    # The role session (aws-auth) may describe, not create.
    assert hook.authorize(access_review(OPS_AWS_AUTH, "watch", "subnets"))["allowed"] is True
    s = hook.authorize(access_review(OPS_AWS_AUTH, "create", "securitygroups"))
    assert s["allowed"] is False and not s.get("denied")
    # Unmapped: no opinion, saying why.
    s = hook.authorize(access_review(MALLORY, "get", "instances"))
    assert s == {"allowed": False, "reason": s["reason"]} and "mallory" in s["reason"]
    # Status subresource: no EC2 call, no opinion.
    s = hook.authorize(access_review(BOB_EXTRA, "update", "instances", subresource="status"))
    assert s["allowed"] is False and not s.get("denied")
    # Other resources and non-resource URLs through the operator's templates.
    assert hook.authorize(access_review(ALICE_EXTRA, "get", "pods", group=""))["allowed"] is True
    s = hook.authorize(access_review(BOB_EXTRA, "get", "pods", group=""))
    assert s["allowed"] is False and not s.get("denied")
    assert hook.authorize(access_review(ALICE_EXTRA, "get", path="/healthz"))["allowed"] is True
    s = hook.authorize(access_review(ALICE_EXTRA, "get", path="/api/*"))
    assert s["allowed"] is False and "wildcard" in s["evaluationError"], s


# ---- one snapshot for every door ----------------------------------------------------

def query_run_instances(instance_type, tags):
    p = {"Action": "RunInstances", "Version": "2016-11-15", "ImageId": PROD_AMI,
         "InstanceType": instance_type, "MinCount": "1", "MaxCount": "1", "SubnetId": SUBNET}
    if tags:
        p["TagSpecification.1.ResourceType"] = "instance"
        for m, (k, v) in enumerate(tags, start=1):
            p[f"TagSpecification.1.Tag.{m}.Key"] = k
            p[f"TagSpecification.1.Tag.{m}.Value"] = v
    return p


# intent, principal, Query API parameters, admission review, gRPC question, expected
EQUIVALENCE = [
    ("launch t3.micro tagged team=blue", BOB, BOB_EXTRA,
     query_run_instances("t3.micro", [("team", "blue")]),
     lambda: admission_review("CREATE", instance("t3.micro"), user=BOB_EXTRA),
     ("ec2:RunInstances", f"arn:aws:ec2:us-east-1:{PROD}:instance/*",
      {"ec2:InstanceType": "t3.micro", "aws:RequestTag/team": "blue", "aws:TagKeys": ["team"]}),
     "allowed"),
    ("launch m5.xlarge", BOB, BOB_EXTRA,
     query_run_instances("m5.xlarge", [("team", "blue")]),
     lambda: admission_review("CREATE", instance("m5.xlarge"), user=BOB_EXTRA),
     ("ec2:RunInstances", f"arn:aws:ec2:us-east-1:{PROD}:instance/*",
      {"ec2:InstanceType": "m5.xlarge", "aws:RequestTag/team": "blue", "aws:TagKeys": ["team"]}),
     "implicitDeny"),
    ("terminate the blue web server", BOB, BOB_EXTRA,
     {"Action": "TerminateInstances", "InstanceId.1": BLUE_WEB},
     lambda: admission_review("DELETE", old=instance(status={"instanceID": BLUE_WEB}), user=BOB_EXTRA),
     ("ec2:TerminateInstances", f"arn:aws:ec2:us-east-1:{PROD}:instance/{BLUE_WEB}",
      {"ec2:ResourceTag/team": "blue"}),
     "explicitDeny"),
    ("terminate it as the administrator", ALICE, ALICE_EXTRA,
     {"Action": "TerminateInstances", "InstanceId.1": BLUE_WEB},
     lambda: admission_review("DELETE", old=instance(status={"instanceID": BLUE_WEB}), user=ALICE_EXTRA),
     ("ec2:TerminateInstances", f"arn:aws:ec2:us-east-1:{PROD}:instance/{BLUE_WEB}",
      {"ec2:ResourceTag/team": "blue"}),
     "allowed"),
]


@pytest.fixture(scope="module")
def pb(tmp_path_factory):
    from conftest import grpc_stubs
    return grpc_stubs(tmp_path_factory, "authorizer")


@pytest.mark.parametrize("intent,principal,user,query,review,question,expected", EQUIVALENCE,
                         ids=[e[0] for e in EQUIVALENCE])
def test_the_same_intent_gets_the_same_decision_through_every_door(
        hook, pb, intent, principal, user, query, review, question, expected):
    import grpc
    # EC2 Query API, through Envoy's ext_authz.
    hook.stack.backend.record.write_text("")
    status, _, body = hook.stack.call(principal, query, host="ec2.us-east-1.amazonaws.com")
    query_outcome = "allowed" if status == 200 else None
    if status == 403:
        message = error(body)[1]
        query_outcome = "explicitDeny" if "explicit deny" in message else "implicitDeny"
    # Admission webhook.
    response = hook.admit(review())
    admission_outcome = "allowed" if response["allowed"] else (
        "explicitDeny" if "explicit deny" in response["status"]["message"] else "implicitDeny")
    # gRPC Authorizer, with the decisive authorization.
    pb2, pb2_grpc = pb
    action, resource, ctx = question
    context = {"aws:RequestedRegion": pb2.ContextValue(string_value="us-east-1")}
    for k, v in ctx.items():
        context[k] = (pb2.ContextValue(string_list=pb2.StringList(values=v)) if isinstance(v, list)
                      else pb2.ContextValue(string_value=v))
    with grpc.insecure_channel(hook.server.grpc) as ch:
        r = pb2_grpc.AuthorizerStub(ch).Authorize(pb2.AuthorizeRequest(
            principal=pb2.Principal(arn=principal), action=action, resource=resource,
            context=context), timeout=10)
    assert (query_outcome, admission_outcome, r.decision_string) == (expected,) * 3, intent
    if expected == "allowed":
        assert response["auditAnnotations"]["revision"] == r.revision


def test_webhook_decisions_are_counted_and_logged(hook):
    hook.admit(admission_review("CREATE", instance(), user=BOB_EXTRA))
    metrics = requests.get(hook.server.admin + "/metrics", timeout=5).text
    counted = [l for l in metrics.splitlines()
               if l.startswith("iamgate_decisions_total") and 'frontend="webhook"' in l]
    assert any('decision="allowed"' in l and not l.endswith(" 0") for l in counted), counted
    assert any('decision="explicitDeny"' in l or 'decision="implicitDeny"' in l for l in counted)
    lines = [json.loads(l) for l in hook.decision_log.read_text().splitlines() if l.strip()]
    webhook = [l for l in lines if l.get("frontend") == "webhook"]
    assert webhook and {"decision_id", "revision", "principal", "action"} <= set(webhook[-1])



def test_access_reviews_find_a_named_objects_resource_in_the_inventory(hook):
    """issue 16: the resource of `delete instances web` in team-a is the
    instance the controller created for it (its namespace and name tags),
    with its tags; without a match, any instance of the account."""
    iid = "i-0c8a5000000000001"
    r = control_post(hook.server, "/v1/inventory", json={"changes": [{"op": "upsert", "resource": {
        "id": iid, "account": PROD, "region": "us-east-1",
        "tags": {"services.k8s.aws/namespace": "team-a", "services.k8s.aws/name": "web",
                 "team": "blue"},
        "attributes": {"instance_type": "t3.micro"}}}]})
    assert r.status_code == 200, r.text
    s = hook.authorize(access_review(BOB_EXTRA, "delete", "instances", name="web"))
    assert s["denied"] is True and f"instance/{iid}:" in s["reason"], s
    s = hook.authorize(access_review(BOB_EXTRA, "delete", "instances", name="web", namespace="team-b"))
    assert s["denied"] is True and "instance/*:" in s["reason"], s


def test_aws_auth_changes_are_picked_up_and_bad_ones_ignored(hook):
    """issue 16: the aws-auth file is re-read when it changes (a ConfigMap
    update); one that does not parse keeps the previous mapping."""
    import time
    path = hook.pki / "aws-auth.yaml"
    carol = mapped_user("carol-ops", [])
    assert hook.authorize(access_review(carol, "list", "instances"))["allowed"] is False
    doc = yaml.safe_load(AWS_AUTH)
    doc["data"]["mapUsers"] += f"- userarn: arn:aws:iam::{PROD}:user/carol\n  username: carol-ops\n"
    try:
        path.write_text(yaml.safe_dump(doc))
        deadline = time.monotonic() + 10
        while not hook.authorize(access_review(carol, "list", "instances"))["allowed"]:
            assert time.monotonic() < deadline, "the new aws-auth mapping was not picked up"
            time.sleep(0.3)
        path.write_text("data:\n  mapUsers: [not, a, string]\n")
        time.sleep(3)
        assert hook.authorize(access_review(carol, "list", "instances"))["allowed"] is True
        assert "aws-auth mapping unusable" in hook.server.log()
    finally:
        path.write_text(AWS_AUTH)


# ---- deploy/kubernetes and the Helm chart (validated offline) -------------------------

from conftest import BINARY, ROOT  # noqa: E402
from test_helm import CHART, helm, render, run, validate_file  # noqa: E402,F401

DEPLOY = ROOT / "deploy" / "kubernetes"


def serve_flags():
    rc, out = run([BINARY, "serve", "--help"])
    assert rc == 0, out
    return set(re.findall(r"--[a-z0-9-]+", out))


def flags_of(args):
    return {a.split("=", 1)[0] for a in args if a.startswith("--")}


def crd_plurals():
    return sorted(yaml.safe_load((CRDS / f).read_text())["spec"]["names"]["plural"]
                  for _, f in KINDS.values())


def check_admission_webhook(vwc, service_name):
    (w,) = vwc["webhooks"]
    assert w["failurePolicy"] == "Fail" and w["sideEffects"] == "None"
    assert w["admissionReviewVersions"] == ["v1"]
    assert w["clientConfig"]["service"]["name"] == service_name
    assert w["clientConfig"]["service"]["path"] == "/admission"
    (rule,) = w["rules"]
    assert rule["apiGroups"] == [GROUP]
    assert sorted(rule["operations"]) == ["CREATE", "DELETE", "UPDATE"]
    assert sorted(rule["resources"]) == crd_plurals()
    assert vwc["metadata"]["annotations"]["cert-manager.io/inject-ca-from"]


def merge_patch(deployment, patch):
    """kubectl's strategic merge for what the patch touches: containers by
    name, their args replaced, ports / volumeMounts / volumes merged by key."""
    out = copy.deepcopy(deployment)
    spec, pspec = out["spec"]["template"]["spec"], patch["spec"]["template"]["spec"]
    for pc in pspec["containers"]:
        (c,) = [c for c in spec["containers"] if c["name"] == pc["name"]]
        c["args"] = pc["args"]
        for field, key in (("ports", "containerPort"), ("volumeMounts", "mountPath")):
            keep = [x for x in c.get(field, []) if x[key] not in {p[key] for p in pc[field]}]
            c[field] = keep + pc[field]
    names = {v["name"] for v in pspec["volumes"]}
    spec["volumes"] = [v for v in spec["volumes"] if v["name"] not in names] + pspec["volumes"]
    return out


def test_deploy_kubernetes_webhook_files(tmp_path):
    """issue 16: deploy/kubernetes/webhook.yaml passes kubernetes-validate
    (test_helm checks every file there too), the Deployment patched with
    webhook/deployment-patch.yaml still does and passes only flags the binary
    has, and the authorization webhook's kubeconfig and
    AuthorizationConfiguration point at the webhook Service's /authorize."""
    docs = [d for d in yaml.safe_load_all((DEPLOY / "webhook.yaml").read_text()) if d]
    rc, out, skipped = validate_file(DEPLOY / "webhook.yaml")
    assert rc == 0 and skipped == ["Certificate"], out
    (svc,) = [d for d in docs if d["kind"] == "Service"]
    (vwc,) = [d for d in docs if d["kind"] == "ValidatingWebhookConfiguration"]
    (cert,) = [d for d in docs if d["kind"] == "Certificate"]
    check_admission_webhook(vwc, svc["metadata"]["name"])
    assert vwc["metadata"]["annotations"]["cert-manager.io/inject-ca-from"] == \
        "iamgate/" + cert["metadata"]["name"]
    assert f"{svc['metadata']['name']}.iamgate.svc" in cert["spec"]["dnsNames"]

    shared = [d for d in yaml.safe_load_all((DEPLOY / "shared-service.yaml").read_text()) if d]
    (dep,) = [d for d in shared if d["kind"] == "Deployment"]
    patch = yaml.safe_load((DEPLOY / "webhook" / "deployment-patch.yaml").read_text())
    patched = merge_patch(dep, patch)
    path = tmp_path / "patched.yaml"
    path.write_text(yaml.safe_dump(patched))
    rc, out, _ = validate_file(path)
    assert rc == 0, out
    (ig,) = [c for c in patched["spec"]["template"]["spec"]["containers"] if c["name"] == "iamgate"]
    (orig,) = [c for c in dep["spec"]["template"]["spec"]["containers"] if c["name"] == "iamgate"]
    assert set(orig["args"]) <= set(ig["args"]), "the patch must keep the Deployment's own flags"
    assert flags_of(ig["args"]) <= serve_flags()
    secrets = {v["name"]: v for v in patched["spec"]["template"]["spec"]["volumes"]}
    assert secrets["webhook-tls"]["secret"]["secretName"] == cert["spec"]["secretName"]

    kubeconfig = yaml.safe_load((DEPLOY / "webhook" / "authorization-kubeconfig.yaml").read_text())
    assert kubeconfig["kind"] == "Config"
    (cluster,) = kubeconfig["clusters"]
    assert cluster["cluster"]["server"] == \
        f"https://{svc['metadata']['name']}.iamgate.svc:443/authorize"
    assert kubeconfig["users"][0]["user"]["client-certificate"]
    authz = yaml.safe_load((DEPLOY / "webhook" / "authorization-config.yaml").read_text())
    assert authz["kind"] == "AuthorizationConfiguration"
    types = [a["type"] for a in authz["authorizers"]]
    assert types.index("Webhook") < types.index("RBAC")
    (webhook,) = [a for a in authz["authorizers"] if a["type"] == "Webhook"]
    assert webhook["webhook"]["subjectAccessReviewVersion"] == "v1"
    assert webhook["webhook"]["connectionInfo"]["kubeConfigFile"].endswith(
        "authorization-kubeconfig.yaml")


def test_helm_chart_webhook(helm, tmp_path):
    """issue 16: the chart's webhook (ci/webhook-values.yaml) lints, renders
    manifests that pass kubernetes-validate, a ValidatingWebhookConfiguration
    with failurePolicy Fail for the ACK kinds, and only flags the binary
    has; enabling it without TLS or a CA bundle is refused."""
    values = CHART / "ci" / "webhook-values.yaml"
    rc, out = run([helm, "lint", "--strict", CHART, "-f", values])
    assert rc == 0, out
    rc, text = render(helm, [values])
    assert rc == 0, text
    path = tmp_path / "webhook.yaml"
    path.write_text(text)
    rc, out, skipped = validate_file(path)
    assert rc == 0 and not skipped, out
    docs = [d for d in yaml.safe_load_all(text) if d]
    (vwc,) = [d for d in docs if d["kind"] == "ValidatingWebhookConfiguration"]
    svc = [d for d in docs if d["kind"] == "Service" and d["metadata"]["name"].endswith("-webhook")]
    check_admission_webhook(vwc, svc[0]["metadata"]["name"])
    (dep,) = [d for d in docs if d["kind"] == "Deployment"]
    (ig,) = [c for c in dep["spec"]["template"]["spec"]["containers"] if c["name"] == "iamgate"]
    assert {"--webhook-listen", "--webhook-tls-cert", "--webhook-client-ca",
            "--webhook-aws-auth"} <= flags_of(ig["args"]) <= serve_flags()
    for bad, why in [(["webhook.enabled=true"], "secretName"),
                     (["webhook.enabled=true", "webhook.secretName=x"], "caBundle"),
                     (["webhook.enabled=true", "webhook.failurePolicy=Never"], "failurePolicy")]:
        rc, out = render(helm, [], *bad)
        assert rc != 0 and why in out, out


def test_a_bad_aws_auth_mapping_stops_the_start(tmp_path):
    """issue 16: an aws-auth file that does not parse is refused at start,
    with what and where, instead of serving with no mapping."""
    import subprocess
    make_ca(tmp_path, "ca")
    make_leaf(tmp_path, "server", "ca", "IP:127.0.0.1")
    bad = tmp_path / "aws-auth.yaml"
    bad.write_text("data:\n  mapRoles: |\n    - rolearn: arn:aws:iam::111111111111:user/bob\n      username: x\n")
    p = subprocess.run([str(BINARY), "serve", "--grpc-listen", "127.0.0.1:0",
                        "--http-listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0",
                        "--webhook-listen", "127.0.0.1:0",
                        "--webhook-tls-cert", str(tmp_path / "server.pem"),
                        "--webhook-tls-key", str(tmp_path / "server.key"),
                        "--webhook-aws-auth", str(bad)],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 1, p.stderr
    assert "mapRoles[0]" in p.stderr and "not a role ARN" in p.stderr, p.stderr
