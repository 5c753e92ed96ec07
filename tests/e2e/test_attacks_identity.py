"""Attacks on who the caller is and on what the generic HTTP mapping checks,
sent through the real Envoy (tests/e2e/envoy/bootstrap.yaml) in front of a
stub backend that records what reaches it. Issue 11 ("Fail closed at every
door"): item 1 (a client-sent principal header, verified peers whose SAN
maps to nothing, JWTs Envoy verified or refused), item 2 (template values
that rewrite the ARN; resource tags from client headers), item 6 (matrix
parameters and whitespace in path segments) and item 5 (nothing a client
sends reaches Envoy's failure mode).

Callers are identified as test_envoy.py does: a JWT the test issuer signs
(`sub` → `arn:aws:iam::111111111111:user/{sub}`), or a client certificate.
"""

import json

import pytest
import requests

from test_envoy import (  # noqa: F401  (fixtures)
    BOB, HERE, OPS, STATUS_ON_ERROR, Stack, as_user, envoy_bin, issuer, pki,
)

ROOT_ARN = "arn:aws:iam::111111111111:root"
PRINCIPAL = "x-iamgate-principal"


def authorize(stack, principal, action, resource, **context):
    """The decision iamgate's own API gives for a request, to show what an
    attack would have obtained had it been mapped."""
    r = stack.server.authorize({"principal": {"arn": principal}, "action": action,
                                "resource": resource, "context": context})
    assert r.status_code == 200, r.text
    return r.json()["decision"]


def refusal(body):
    return json.loads(body)["error"]


@pytest.mark.parametrize("trust_header", [False, True], ids=["default", "trusted-header"])
def test_a_client_sent_principal_header_never_changes_the_principal(
        tmp_path, envoy_bin, pki, issuer, trust_header):
    """Issue 11, item 1: `x-iamgate-principal: <the account root>` from the
    client is removed by Envoy before ext_authz, and iamgate trusts no
    header unless configured to: alone it is no principal (401), beside
    bob's token the caller is still bob. Root could have terminated."""
    args = ("--principal-header", PRINCIPAL) if trust_header else ()
    s = Stack(tmp_path, envoy_bin, pki, issuer, server_args=args)
    try:
        path = "/blue/instances/i-0abc/Terminate"
        assert authorize(s, ROOT_ARN, "ec2:TerminateInstances",
                         "arn:aws:ec2:us-east-1:111111111111:instance/i-0abc",
                         **{"aws:RequestedRegion": "us-east-1"}) == "allowed"
        status, _, body = s.envoy.call("POST", path, {PRINCIPAL: ROOT_ARN})
        assert status == 401, body
        assert refusal(body)["code"] == "unauthenticated"
        status, _, body = s.envoy.call("POST", path, as_user(issuer, **{PRINCIPAL: ROOT_ARN}))
        assert status == 403, body
        assert json.loads(body)["decision"] == "explicitDeny"  # bob's NoTerminate
        assert s.backend.requests() == []
        # An allowed call goes on as bob, with iamgate's header, not the client's.
        status, _, body = s.envoy.call("POST", "/blue/instances/i-0abc/Start",
                                       as_user(issuer, **{PRINCIPAL: ROOT_ARN}))
        assert status == 200, body
        (seen,) = s.backend.requests()
        assert seen["headers"][PRINCIPAL] == BOB
    finally:
        s.close()


def test_without_envoys_header_removal_iamgate_still_trusts_no_header(
        tmp_path, envoy_bin, pki, issuer):
    """Issue 11, item 1: defence in depth. Through an Envoy config that
    forgot to remove the client's header, a default iamgate still does not
    take it for the principal."""
    text = (HERE / "bootstrap.yaml").read_text()
    start = text.index("          # Before ext_authz: the client's copy")
    end = text.index("                - remove: x-iamgate-principal\n", start)
    careless = tmp_path / "careless.yaml"
    careless.write_text(text[:start] + text[end + len("                - remove: x-iamgate-principal\n"):])
    s = Stack(tmp_path, envoy_bin, pki, issuer, bootstrap=careless)
    try:
        status, _, body = s.envoy.call("POST", "/blue/instances/i-0abc/Terminate",
                                       {PRINCIPAL: ROOT_ARN})
        assert status == 401, body
        assert "none of" in refusal(body)["message"]
        assert s.backend.requests() == []
    finally:
        s.close()


def test_a_verified_peer_with_an_unmapped_san_is_denied(tmp_path, envoy_bin, pki, issuer):
    """Issue 11, item 1: Envoy verified the client certificate, but its URI
    SAN matches no --uri-san-principal prefix: refused (403), even with a
    valid JWT and a header iamgate is configured to trust."""
    s = Stack(tmp_path, envoy_bin, pki, issuer, server_args=("--principal-header", PRINCIPAL))
    try:
        headers = as_user(issuer, **{PRINCIPAL: ROOT_ARN})
        for path in ["/blue/instances/i-0abc/Start", "/describe?InstanceId=i-0abc"]:
            status, _, body = s.envoy.call("GET" if "?" in path else "POST", path, headers,
                                           client_cert="stranger")
            assert status == 403, body
            err = refusal(body)
            assert err["code"] == "forbidden", err
            assert "spiffe://elsewhere.example/ns/x/sa/y" in err["message"], err
        assert s.backend.requests() == []
        # The mapped certificate of the same CA is the principal.
        status, _, body = s.envoy.call("POST", "/red/instances/i-0abc/Stop", headers,
                                       client_cert="client")
        assert status == 200, body
        assert [r["headers"][PRINCIPAL] for r in s.backend.requests()] == [OPS]
    finally:
        s.close()


@pytest.fixture
def stack(tmp_path, envoy_bin, pki, issuer):
    s = Stack(tmp_path, envoy_bin, pki, issuer)
    yield s
    s.close()


def test_envoy_refuses_forged_tokens(stack, issuer):
    """Issue 11, item 1: only tokens Envoy verified carry an identity. One
    signed by another key, an unsigned one, an expired one, and one for
    another issuer or audience are refused by Envoy's jwt_authn (401, or 403
    for the audience); the backend is never reached."""
    for why, token in issuer.forged("alice").items():
        status, _, body = stack.envoy.call(
            "POST", "/blue/instances/i-0abc/Terminate",
            {"authorization": f"Bearer {token}", PRINCIPAL: ROOT_ARN})
        assert status in (401, 403), (why, body)
        assert b"Jwt" in body, (why, body)
    assert stack.backend.requests() == []
    # The same claims, signed by the issuer, are alice's.
    status, _, body = stack.envoy.call("POST", "/blue/instances/i-0abc/Terminate",
                                       issuer.bearer("alice"))
    assert status == 200, body


@pytest.mark.parametrize("sub", [ROOT_ARN, "bob smith", "bob*"])
def test_a_verified_claim_that_names_no_principal_is_denied(stack, issuer, sub):
    """Issue 11, item 1: a token Envoy verified whose claim cannot fill the
    operator's template (it would rewrite the ARN) is refused (403), never
    passed through or re-identified by a header."""
    status, _, body = stack.envoy.call("POST", "/blue/instances/i-0abc/Start",
                                       as_user(issuer, sub, **{PRINCIPAL: BOB}))
    assert status == 403, body
    assert refusal(body)["code"] == "forbidden"
    assert stack.backend.requests() == []


def operator_bundle(tmp_path):
    """One operator with `ec2:*`, denied termination of production
    instances (`i-0prod*` in us-east-1)."""
    bundle = tmp_path / "operator-bundle"
    (bundle / "iam").mkdir(parents=True)
    (bundle / "manifest.json").write_text(json.dumps({"revision": "operators-1"}))
    (bundle / "iam" / "111111111111.json").write_text(json.dumps({
        "UserDetailList": [{
            "Path": "/", "UserName": "operator", "UserId": "AIDAOPERATOR00000001",
            "Arn": "arn:aws:iam::111111111111:user/operator",
            "UserPolicyList": [{"PolicyName": "Operate", "PolicyDocument": {
                "Version": "2012-10-17",
                "Statement": [
                    {"Effect": "Allow", "Action": "ec2:*", "Resource": "*"},
                    {"Sid": "KeepProduction", "Effect": "Deny",
                     "Action": "ec2:TerminateInstances",
                     "Resource": "arn:aws:ec2:us-east-1:111111111111:instance/i-0prod*"},
                ]}}],
            "GroupList": [], "AttachedManagedPolicies": [], "Tags": [],
        }],
        "GroupDetailList": [], "RoleDetailList": [], "Policies": [],
    }))
    return bundle


def test_a_region_header_cannot_rewrite_the_arn(tmp_path, envoy_bin, pki, issuer):
    """Issue 11, item 2: the route fills the ARN's region from `x-region`.
    `us-east-1:111111111111:instance/i-0dev:` would make the ARN's resource
    part `instance/i-0dev::111111111111:instance/i-0prod1`, which the Deny on
    `i-0prod*` does not match and `ec2:*` allows: refused with a 400, the
    backend never sees it."""
    s = Stack(tmp_path, envoy_bin, pki, issuer,
              server_args=("--bundle", str(operator_bundle(tmp_path)), "--no-watch"))
    try:
        me = issuer.bearer("operator")
        call = lambda instance, region: s.envoy.call(  # noqa: E731
            "POST", f"/regional/instances/{instance}/Terminate", {**me, "x-region": region})
        status, _, body = call("i-0prod1", "us-east-1")
        assert status == 403 and json.loads(body)["decision"] == "explicitDeny", body
        attack = "us-east-1:111111111111:instance/i-0dev:"
        forged = f"arn:aws:ec2:{attack}:111111111111:instance/i-0prod1"
        assert authorize(s, "arn:aws:iam::111111111111:user/operator",
                         "ec2:TerminateInstances", forged) == "allowed"
        for region in [attack, "us-east-1/x", "us east-1", "*"]:
            status, _, body = call("i-0prod1", region)
            assert status == 400, (region, body)
            err = refusal(body)
            assert "`{header.x-region}` fills the ARN's region" in err["message"], err
        assert s.backend.requests() == []
        status, _, body = call("i-0dev1", "us-east-1")
        assert status == 200, body
        assert [r["path"] for r in s.backend.requests()] == ["/regional/instances/i-0dev1/Terminate"]
    finally:
        s.close()


def test_resource_tags_come_from_the_route_not_from_the_client(stack, issuer):
    """Issue 11, item 2: bob may start team-blue instances only. The red
    route states its tag; headers that name a team change nothing."""
    for header in ["x-instance-team", "x-team", "x-amz-tag-team"]:
        status, _, body = stack.envoy.call("POST", "/red/instances/i-0abc/Start",
                                           as_user(issuer, **{header: "blue"}))
        assert status == 403 and json.loads(body)["decision"] == "implicitDeny", body
    assert stack.backend.requests() == []


@pytest.mark.parametrize("path,why", [
    ("/blue/instances/i-0prod;jsessionid=x/Terminate", "contains `;`"),
    ("/blue/instances/i-0abc;jsessionid=x/Start", "contains `;`"),
    ("/blue/instances/i-0abc%3Bv=1/Start", "contains `;`"),
    ("/blue/instances/i-0abc%20/Start", "whitespace"),
    ("/blue/instances/%20i-0abc/Start", "whitespace"),
    ("/blue/instances/i-0abc/Start%09", "control character"),
    ("/blue/instances/i-0abc/Start/x;y", "contains `;`"),
])
def test_matrix_parameters_and_whitespace_in_segments_are_refused(stack, issuer, path, why):
    """Issue 11, item 6: a segment with `;` (a servlet container drops
    `;jsessionid=...`, iamgate would decide another resource) or whitespace
    (trimmed by some servers) is not canonical: 400, backend never
    reached."""
    status, _, body = stack.envoy.call("POST", path, as_user(issuer))
    assert status == 400, body
    err = refusal(body)
    assert err["code"] == "bad_request" and why in err["message"], err
    assert stack.backend.requests() == []


def test_a_route_may_allow_matrix_parameters(stack, issuer):
    """Issue 11, item 6: the legacy route sets `iamgate.path.allow_params`;
    the resource keeps the segment as the backend receives it, and values
    still may not hold ARN separators."""
    status, _, body = stack.envoy.call("POST", "/legacy/blue/i-0abc;jsessionid=x/Start",
                                       as_user(issuer))
    assert status == 200, body
    status, _, body = stack.envoy.call("POST", "/legacy/blue/i-0abc;a:b/Start", as_user(issuer))
    assert status == 400, body
    assert [r["path"] for r in stack.backend.requests()] == ["/legacy/blue/i-0abc;jsessionid=x/Start"]


def test_client_errors_are_denials_even_with_failure_mode_allow(tmp_path, envoy_bin, pki, issuer):
    """Issue 11, item 5: with `failure_mode_allow: true`, an ext_authz
    error_response would be forwarded. Nothing a client sends is one: each
    refusal below is a denial that never reaches the backend. A route
    without a mapping (the operator's error) is the contrast: Envoy's
    failure mode applies to it."""
    s = Stack(tmp_path, envoy_bin, pki, issuer, failure_mode_allow=True)
    try:
        bob = as_user(issuer)
        attempts = [
            ("POST", "/blue/instances/i-0abc/Start", {PRINCIPAL: ROOT_ARN}, None, 401),
            ("POST", "/blue/instances/i-0abc/Start", as_user(issuer, "a b"), None, 403),
            ("POST", "/blue/instances/i-0abc/Start", bob, "stranger", 403),
            ("POST", "/regional/instances/i-0abc/Start",
             {**bob, "x-region": "us-east-1:1:instance/x:"}, None, 400),
            ("POST", "/regional/instances/i-0abc/Start", bob, None, 400),  # no x-region
            ("POST", "/blue/instances/i-0abc;x/Start", bob, None, 400),
            ("POST", "/blue/instances/i-0%2Fabc/Start", bob, None, 400),
            ("POST", "/blue/instances/i-0%ZZ/Start", bob, None, 400),
            ("GET", "/describe?InstanceId=i-1&InstanceId=i-2", bob, None, 400),
            ("GET", "/describe?InstanceId=a%3Ab", bob, None, 400),
        ]
        for method, path, headers, cert, expected in attempts:
            status, _, body = s.envoy.call(method, path, headers, client_cert=cert)
            assert status == expected, (path, body)
        assert s.backend.requests() == []
        status, _, _ = s.envoy.call("GET", "/unmapped/x", bob)
        assert status == 200
        (seen,) = s.backend.requests()
        assert seen["headers"].get("x-envoy-auth-failure-mode-allowed") == "true"
        metrics = requests.get(s.server.admin + "/metrics", timeout=5).text
        assert 'iamgate_request_errors_total{frontend="ext_authz",reason="internal"} 1' in metrics
    finally:
        s.close()


def varint(data, at):
    """A protobuf varint at `at`: (value, the offset after it)."""
    value, shift = 0, 0
    while True:
        b = data[at]
        value |= (b & 0x7f) << shift
        at, shift = at + 1, shift + 7
        if b < 0x80:
            return value, at


def test_a_check_that_does_not_decode_is_denied_not_failed(demo_server):
    """Issue 11, item 5: a gRPC error from Check is Envoy's failure mode
    (with `failure_mode_allow: true`, an allow). Bytes that do not decode
    as a CheckRequest are answered with a CheckResponse that denies (status
    INVALID_ARGUMENT, a 400 denied_response), whatever sent them."""
    import grpc

    with grpc.insecure_channel(demo_server.grpc) as channel:
        check = channel.unary_unary("/envoy.service.auth.v3.Authorization/Check")
        for garbage in [b"\xff\xff\xff\xff\xff", b"\x0a\x05\x01", b"\x0a\x02\x22\x80"]:
            answer = check(garbage, timeout=10)
            # Field 1 (status) holds code 3; field 2 is denied_response,
            # never 5 (error_response).
            assert answer[0] == 0x0a, answer
            status_len, at = varint(answer, 1)
            assert answer[at:at + 2] == b"\x08\x03", answer
            rest = answer[at + status_len:]
            assert rest[0] == 0x12, answer
            assert b'"bad_request"' in rest, answer
    metrics = requests.get(demo_server.admin + "/metrics", timeout=5).text
    assert 'iamgate_request_errors_total{frontend="ext_authz",reason="bad_request"} 3' in metrics
