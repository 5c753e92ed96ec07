"""iamgate's gRPC API through an independent gRPC stack: Python grpcio with
stubs generated at test time by grpcio-tools from
proto/iamgate/v1/authorizer.proto, the standard health and reflection
clients (grpcio-health-checking, grpcio-reflection), and grpcurl driving
the server through reflection alone, as the README shows."""

import json
import pathlib
import subprocess
import sys

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from conftest import grpc_stubs, start_server

BOB = "arn:aws:iam::111111111111:user/engineering/bob"
BLUE = "arn:aws:ec2:us-east-1:111111111111:instance/i-0blue0000000000001"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


@pytest.fixture(scope="session")
def pb(tmp_path_factory):
    """(authorizer_pb2, authorizer_pb2_grpc), generated from the repo's proto."""
    return grpc_stubs(tmp_path_factory, "authorizer")


@pytest.fixture
def channel(demo_server):
    with grpc.insecure_channel(demo_server.grpc) as ch:
        grpc.channel_ready_future(ch).result(timeout=10)
        yield ch


def context(pb2, values):
    """A context map from plain Python values."""
    out = {}
    for key, value in values.items():
        if isinstance(value, bool):
            out[key] = pb2.ContextValue(bool_value=value)
        elif isinstance(value, (int, float)):
            out[key] = pb2.ContextValue(number_value=value)
        elif isinstance(value, list):
            out[key] = pb2.ContextValue(string_list=pb2.StringList(values=value))
        else:
            out[key] = pb2.ContextValue(string_value=value)
    return out


def request(pb2, action, resource, ctx=None, arn=BOB, **principal):
    return pb2.AuthorizeRequest(
        principal=pb2.Principal(arn=arn, **principal),
        action=action,
        resource=resource,
        context=context(pb2, ctx or {}),
    )


def test_authorize_three_outcomes(pb, channel):
    pb2, pb2_grpc = pb
    stub = pb2_grpc.AuthorizerStub(channel)
    region = {"aws:RequestedRegion": "us-east-1"}

    allowed, call = stub.Authorize.with_call(
        request(pb2, "ec2:StartInstances", BLUE, {**region, "ec2:ResourceTag/team": "blue"}),
        metadata=[("traceparent", f"00-{TRACE_ID}-00f067aa0ba902b7-01")],
        timeout=10,
    )
    assert call.code() == grpc.StatusCode.OK
    assert allowed.decision == pb2.ALLOWED
    assert allowed.decision_string == "allowed"
    assert allowed.revision.startswith("demo-1+sha256:")
    assert allowed.decision_id
    assert {"identity", "boundary", "scp"} <= {m.policy_type for m in allowed.matched}

    denied = stub.Authorize(request(pb2, "ec2:TerminateInstances", BLUE, region), timeout=10)
    assert denied.decision == pb2.EXPLICIT_DENY
    assert denied.decision_string == "explicitDeny"
    assert any(m.sid for m in denied.matched)

    implicit = stub.Authorize(
        request(pb2, "ec2:StartInstances", BLUE, {**region, "ec2:ResourceTag/team": "red"}),
        timeout=10,
    )
    assert implicit.decision == pb2.IMPLICIT_DENY

    unknown = stub.Authorize(
        request(pb2, "ec2:DescribeInstances", "*", arn="arn:aws:iam::111111111111:user/mallory"),
        timeout=10,
    )
    assert unknown.decision == pb2.IMPLICIT_DENY
    assert "unknown principal" in unknown.reason


def test_context_value_types(pb, channel):
    pb2, pb2_grpc = pb
    stub = pb2_grpc.AuthorizerStub(channel)
    r = stub.Authorize(request(pb2, "ec2:RunInstances", "arn:aws:ec2:us-east-1:111111111111:instance/*", {
        "aws:RequestedRegion": "us-east-1",
        "aws:RequestTag/team": "blue",
        "aws:TagKeys": ["team"],
        "ec2:InstanceType": "t3.micro",
        "aws:SecureTransport": True,
        "aws:EpochTime": 1700000000,
    }), timeout=10)
    assert r.decision == pb2.ALLOWED, r.reason
    with pytest.raises(grpc.RpcError) as err:
        stub.Authorize(pb2.AuthorizeRequest(
            principal=pb2.Principal(arn=BOB), action="ec2:DescribeInstances", resource="*",
            context={"k": pb2.ContextValue()},
        ), timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "context key `k`" in err.value.details()


def test_batch_one_snapshot_and_limit(pb, channel):
    pb2, pb2_grpc = pb
    stub = pb2_grpc.AuthorizerStub(channel)
    region = context(pb2, {"aws:RequestedRegion": "us-east-1"})

    def item(action, resource="*"):
        return pb2.AuthorizeBatchItem(action=action, resource=resource, context=region)

    r = stub.AuthorizeBatch(pb2.AuthorizeBatchRequest(
        principal=pb2.Principal(arn=BOB),
        items=[item("ec2:DescribeInstances"), item("ec2:DeleteVpc"), item("ec2:StartInstances", BLUE)],
    ), timeout=10)
    assert [x.decision_string for x in r.results] == ["allowed", "explicitDeny", "implicitDeny"]
    assert r.revision.startswith("demo-1+sha256:")
    assert {x.revision for x in r.results} == {r.revision}
    assert len({x.decision_id for x in r.results}) == 3

    with pytest.raises(grpc.RpcError) as err:
        stub.AuthorizeBatch(pb2.AuthorizeBatchRequest(
            principal=pb2.Principal(arn=BOB), items=[item("ec2:DescribeInstances")] * 101,
        ), timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "101" in err.value.details()


def test_calls_and_large_batches_at_once_on_one_connection(pb, channel):
    """Issue 12: a connection's HTTP/2 streams run in the connection's own
    task. Hundreds of calls in flight at once on one channel, among them
    batches whose request is nine times HTTP/2's initial flow-control window
    (64 KiB: the server must grant more window while it reads), all
    complete with the right answers."""
    pb2, pb2_grpc = pb
    stub = pb2_grpc.AuthorizerStub(channel)
    region = {"aws:RequestedRegion": "us-east-1"}
    padded = context(pb2, {**region, "iamgate:pad": "x" * 6000})
    big = pb2.AuthorizeBatchRequest(
        principal=pb2.Principal(arn=BOB),
        items=[pb2.AuthorizeBatchItem(action="ec2:DescribeInstances", resource="*", context=padded)] * 100,
    )
    assert big.ByteSize() > 9 * 65535
    calls = []
    for i in range(300):
        allowed = i % 2 == 0
        team = "blue" if allowed else "red"
        calls.append((allowed, stub.Authorize.future(
            request(pb2, "ec2:StartInstances", BLUE, {**region, "ec2:ResourceTag/team": team}), timeout=30)))
    batches = [stub.AuthorizeBatch.future(big, timeout=30) for _ in range(4)]
    for allowed, call in calls:
        want = pb2.ALLOWED if allowed else pb2.IMPLICIT_DENY
        assert call.result().decision == want
    for batch in batches:
        results = batch.result().results
        assert [r.decision_string for r in results] == ["allowed"] * 100


def test_session_policy(pb, channel):
    pb2, pb2_grpc = pb
    stub = pb2_grpc.AuthorizerStub(channel)
    describe_only = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "ec2:Describe*", "Resource": "*"}]})
    region = {"aws:RequestedRegion": "us-east-1"}
    r = stub.Authorize(request(pb2, "ec2:StartInstances", BLUE,
                               {**region, "ec2:ResourceTag/team": "blue"},
                               session_policy_json=describe_only), timeout=10)
    assert r.decision == pb2.IMPLICIT_DENY
    r = stub.Authorize(request(pb2, "ec2:DescribeInstances", "*", region,
                               session_policy_json=describe_only), timeout=10)
    assert r.decision == pb2.ALLOWED
    for bad in ["{not json", json.dumps({"Statement": [{"Effect": "Maybe", "Action": "*", "Resource": "*"}]})]:
        with pytest.raises(grpc.RpcError) as err:
            stub.Authorize(request(pb2, "ec2:DescribeInstances", "*", region,
                                   session_policy_json=bad), timeout=10)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_oversized_message_is_invalid_argument(pb, channel):
    """A message over --max-body-bytes (default 1 MiB) is the caller's fault."""
    pb2, pb2_grpc = pb
    stub = pb2_grpc.AuthorizerStub(channel)
    with pytest.raises(grpc.RpcError) as err:
        stub.Authorize(request(pb2, "ec2:DescribeInstances", "x" * (2 << 20),
                               {"aws:RequestedRegion": "us-east-1"}), timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "too large" in err.value.details()
    r = stub.Authorize(request(pb2, "ec2:DescribeInstances", "*", {"aws:RequestedRegion": "us-east-1"}),
                       timeout=10)
    assert r.decision == pb2.ALLOWED


def test_malformed_protobuf_is_refused_and_server_keeps_serving(pb, channel):
    pb2, pb2_grpc = pb
    raw = channel.unary_unary("/iamgate.v1.Authorizer/Authorize",
                              request_serializer=lambda b: b, response_deserializer=lambda b: b)
    with pytest.raises(grpc.RpcError) as err:
        raw(b"\xff\xff\xff\xff\xff", timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    stub = pb2_grpc.AuthorizerStub(channel)
    r = stub.Authorize(request(pb2, "ec2:DescribeInstances", "*", {"aws:RequestedRegion": "us-east-1"}),
                       timeout=10)
    assert r.decision == pb2.ALLOWED


def test_health_check_and_watch(channel):
    stub = health_pb2_grpc.HealthStub(channel)
    serving = health_pb2.HealthCheckResponse.SERVING
    for service in ["", "iamgate.v1.Authorizer"]:
        r = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
        assert r.status == serving, service
    with pytest.raises(grpc.RpcError) as err:
        stub.Check(health_pb2.HealthCheckRequest(service="no.such.Service"), timeout=10)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    watch = stub.Watch(health_pb2.HealthCheckRequest(service="iamgate.v1.Authorizer"), timeout=10)
    assert next(watch).status == serving
    watch.cancel()


def test_reflection_describes_the_api(channel):
    from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
        ProtoReflectionDescriptorDatabase,
    )
    from google.protobuf.descriptor_pool import DescriptorPool

    db = ProtoReflectionDescriptorDatabase(channel)
    services = set(db.get_services())
    assert {"iamgate.v1.Authorizer", "grpc.health.v1.Health"} <= services
    pool = DescriptorPool(db)
    svc = pool.FindServiceByName("iamgate.v1.Authorizer")
    assert {m.name for m in svc.methods} == {"Authorize", "AuthorizeBatch"}
    decision = pool.FindEnumTypeByName("iamgate.v1.Decision")
    assert [v.name for v in decision.values] == [
        "DECISION_UNSPECIFIED", "ALLOWED", "EXPLICIT_DENY", "IMPLICIT_DENY"]


def grpcurl_binary():
    path = pathlib.Path(sys.executable).parent / "grpcurl"
    return path if path.exists() else None


@pytest.mark.skipif(grpcurl_binary() is None, reason="grpcurl not installed")
def test_grpcurl_through_reflection(demo_server):
    """The README's grpcurl example, with nothing but server reflection."""
    grpcurl = str(grpcurl_binary())
    out = subprocess.run([grpcurl, "-plaintext", demo_server.grpc, "list"],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    assert "iamgate.v1.Authorizer" in out.split()
    body = json.dumps({
        "principal": {"arn": BOB},
        "action": "ec2:StartInstances",
        "resource": BLUE,
        "context": {"aws:RequestedRegion": {"string_value": "us-east-1"},
                    "ec2:ResourceTag/team": {"string_value": "blue"}},
    })
    out = subprocess.run([grpcurl, "-plaintext", "-d", body, demo_server.grpc,
                          "iamgate.v1.Authorizer/Authorize"],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    answer = json.loads(out)
    assert answer["decision"] == "ALLOWED"
    assert answer["decisionString"] == "allowed"
    out = subprocess.run([grpcurl, "-plaintext", demo_server.grpc, "grpc.health.v1.Health/Check"],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    assert json.loads(out)["status"] == "SERVING"


@pytest.fixture
def header_server(tmp_path):
    """The demo with the principal header trusted: grpcurl plays the proxy
    that sets it (as a trusted hop would)."""
    server = start_server(tmp_path, "--principal-header", "x-iamgate-principal")
    yield server
    server.stop()


@pytest.mark.skipif(grpcurl_binary() is None, reason="grpcurl not installed")
def test_grpcurl_lists_describes_and_calls_ext_authz(header_server):
    """Issue 11 (reflection): Envoy's `envoy.service.auth.v3.Authorization`,
    served by a hand-written service, is in server reflection again: grpcurl
    lists it, describes it, and calls `Check` with nothing but reflection."""
    grpcurl = str(grpcurl_binary())

    def run(*args):
        return subprocess.run([grpcurl, "-plaintext", *args], capture_output=True, text=True,
                              timeout=60, check=True).stdout

    assert "envoy.service.auth.v3.Authorization" in run(header_server.grpc, "list").split()
    described = run(header_server.grpc, "describe", "envoy.service.auth.v3.Authorization")
    assert "rpc Check ( .envoy.service.auth.v3.CheckRequest )" in described
    assert "returns ( .envoy.service.auth.v3.CheckResponse )" in described
    message = run(header_server.grpc, "describe", "envoy.service.auth.v3.AttributeContext.HttpRequest")
    assert "map<string, string> headers" in message

    def check(action):
        body = json.dumps({
            "attributes": {
                "request": {"http": {"method": "POST", "host": "api.local", "path": "/v1/start",
                                     "headers": {"x-iamgate-principal": BOB}}},
                "contextExtensions": {
                    "iamgate.action": action,
                    "iamgate.resource": BLUE,
                    "iamgate.context.aws:RequestedRegion": "us-east-1",
                    "iamgate.context.ec2:ResourceTag/team": "blue",
                },
            },
        })
        return json.loads(run("-d", body, header_server.grpc, "envoy.service.auth.v3.Authorization/Check"))

    allowed = check("ec2:StartInstances")
    assert allowed["status"].get("code", 0) == 0
    assert "okResponse" in allowed
    denied = check("ec2:TerminateInstances")
    assert denied["status"]["code"] == 7
    assert denied["deniedResponse"]["status"]["code"] == "Forbidden"
