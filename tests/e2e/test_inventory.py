"""The inventory API of the real binary, on the authenticated control
listener: batches of changes over HTTP/JSON (`POST /v1/inventory`,
`GET /v1/inventory/{id}`, AWS CLI output through `POST /v1/inventory/cli`)
and gRPC (`iamgate.v1.Inventory`, with grpcio stubs generated at test time
from proto/iamgate/v1/inventory.proto), counts and the inventory's version
in the admin `/v1/status`, input that is refused whole with a clear
message, and decisions that keep flowing while updates land. (The refusals
of the other listeners and of unauthenticated callers are in
test_attacks_control.py.)"""

import http.client
import json
import threading

import grpc
import pytest
import requests

from conftest import grpc_stubs
from control_util import start_with_control

ACCOUNT = "111111111111"
BOB = "arn:aws:iam::111111111111:user/engineering/bob"


def instance(iid, **tags):
    return {
        "id": iid,
        "account": ACCOUNT,
        "region": "us-east-1",
        "tags": tags,
        "attributes": {"instance_type": "t3.micro", "image_id": "ami-0aaa",
                       "addresses": ["10.0.0.5"], "groups": ["sg-0web"]},
    }


@pytest.fixture
def demo_server(tmp_path):
    """iamgate serving its built-in demo bundle, with a control listener."""
    server = start_with_control(tmp_path)
    yield server
    server.stop()


def post(server, changes, **kw):
    return requests.post(server.control + "/v1/inventory", json={"changes": changes},
                         headers=server.auth, timeout=10, **kw)


def get(server, rid):
    return requests.get(f"{server.control}/v1/inventory/{rid}", headers=server.auth, timeout=10)


def inventory_status(server):
    return requests.get(server.admin + "/v1/status", timeout=10).json()["inventory"]


def test_upsert_get_delete_and_status_counts(demo_server):
    before = inventory_status(demo_server)
    r = post(demo_server, [
        {"op": "upsert", "resource": instance("i-0inv000000000001", team="blue")},
        {"op": "upsert", "resource": instance("i-0inv000000000002", team="red")},
        {"op": "upsert", "resource": {
            "id": "ami-0inv00000000001", "account": "222222222222", "region": "us-east-1",
            "attributes": {"public": False, "grants": [{"account": ACCOUNT}]}}},
        {"op": "upsert", "resource": {
            "id": "sg-0inv00000000001", "account": ACCOUNT, "region": "us-east-1",
            "attributes": {"group_name": "web", "ingress": [
                {"protocol": "tcp", "from_port": 443, "to_port": 443,
                 "cidrs": ["0.0.0.0/0", "2001:db8::/32"], "groups": ["sg-0lb"]}]}}},
    ])
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["applied"] == {"upserted": 4, "deleted": 0, "grants_changed": 0, "not_found": 0}
    assert body["counts"]["instances"] == before["counts"]["instances"] + 2

    r = get(demo_server, "i-0inv000000000001")
    assert r.status_code == 200, r.text
    res = r.json()["resource"]
    assert res["kind"] == "instance" and res["account"] == ACCOUNT
    assert res["tags"] == {"team": "blue"}
    assert res["attributes"]["instance_type"] == "t3.micro"
    assert res["attributes"]["addresses"] == ["10.0.0.5"]
    sg = get(demo_server, "sg-0inv00000000001").json()["resource"]
    assert sg["attributes"]["ingress"][0]["cidrs"] == ["0.0.0.0/0", "2001:db8::/32"]

    status = inventory_status(demo_server)
    assert status["counts"]["instances"] == before["counts"]["instances"] + 2
    assert status["counts"]["images"] == before["counts"]["images"] + 1
    assert status["counts"]["security_groups"] == before["counts"]["security_groups"] + 1
    assert status["batches"] == before["batches"] + 1
    assert status["updated_at"] is not None
    # The inventory's own version: the seed's hash and a sequence that grew.
    assert status["seq"] == before["seq"] + 1
    assert status["version"] == f"{status['seed_hash']}-{status['seq']}"
    assert status["overlay"]["resources"] == 4 and status["overlay"]["persistent"] is False

    # Replace one, delete one, change grants, and touch an unknown id.
    r = post(demo_server, [
        {"op": "upsert", "resource": instance("i-0inv000000000001", team="green")},
        {"op": "delete", "id": "i-0inv000000000002"},
        {"op": "delete", "id": "i-0nosuch000000000"},
        {"op": "grants", "id": "ami-0inv00000000001", "add": ["all"],
         "remove": [{"account": ACCOUNT}]},
    ])
    assert r.status_code == 200, r.text
    assert r.json()["applied"] == {"upserted": 1, "deleted": 1, "grants_changed": 1, "not_found": 1}
    assert get(demo_server, "i-0inv000000000001").json()["resource"]["tags"] == {"team": "green"}
    r = get(demo_server, "i-0inv000000000002")
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "not_found"
    assert get(demo_server, "ami-0inv00000000001").json()["resource"]["attributes"]["grants"] == ["all"]
    status = inventory_status(demo_server)
    assert status["counts"]["instances"] == before["counts"]["instances"] + 1
    assert status["batches"] == before["batches"] + 2


def test_aws_cli_output_is_accepted_as_is(demo_server):
    doc = {"Reservations": [{"OwnerId": "333333333333", "Instances": [{
        "InstanceId": "i-0cli000000000001", "InstanceType": "m5.large",
        "Placement": {"AvailabilityZone": "eu-west-1a", "Tenancy": "default"},
        "Tags": [{"Key": "env", "Value": "prod"}],
        "SecurityGroups": [{"GroupId": "sg-0cli", "GroupName": "web"}],
        "NetworkInterfaces": [{"NetworkInterfaceId": "eni-0cli", "PrivateIpAddress": "10.1.0.9",
                               "Groups": [{"GroupId": "sg-0cli"}]}]}]}]}
    r = requests.post(demo_server.control + "/v1/inventory/cli",
                      params={"account": "333333333333", "region": "eu-west-1"},
                      json=doc, headers=demo_server.auth, timeout=10)
    assert r.status_code == 200, r.text
    assert r.json()["loaded"] == 1
    res = get(demo_server, "i-0cli000000000001").json()["resource"]
    assert res["region"] == "eu-west-1" and res["tags"] == {"env": "prod"}
    assert res["attributes"]["interfaces"] == ["eni-0cli"]
    assert get(demo_server, "eni-0cli").json()["resource"]["attributes"]["addresses"] == ["10.1.0.9"]

    # A document with an error is refused whole, naming the JSON path.
    bad = {"SecurityGroups": [{"GroupId": "sg-0bad", "IpPermissions": [
        {"IpProtocol": "tcp", "IpRanges": [{"CidrIp": "10.0.0.0/33"}]}]}]}
    r = requests.post(demo_server.control + "/v1/inventory/cli",
                      params={"account": "333333333333", "region": "eu-west-1"},
                      json=bad, headers=demo_server.auth, timeout=10)
    assert r.status_code == 400
    assert "$.SecurityGroups[0].IpPermissions[0].IpRanges[0].CidrIp" in r.json()["error"]["message"]
    assert get(demo_server, "sg-0bad").status_code == 404
    r = requests.post(demo_server.control + "/v1/inventory/cli",
                      params={"account": "333333333333"},
                      json=doc, headers=demo_server.auth, timeout=10)
    assert r.status_code == 400
    assert "`region` is required" in r.json()["error"]["message"]


def test_key_pairs_launch_templates_and_default_subnets_are_writable(demo_server):
    """Each kind takes its own attributes: a key pair's and a launch
    template's name (a key pair's ARN ends in it), a subnet's zone default
    and its associations."""
    before = inventory_status(demo_server)
    r = post(demo_server, [
        {"op": "upsert", "resource": {
            "id": "key-0inv00000000001", "account": ACCOUNT, "region": "us-east-1",
            "attributes": {"name": "deploy"}}},
        {"op": "upsert", "resource": {
            "id": "lt-0inv000000000001", "account": ACCOUNT, "region": "us-east-1",
            "attributes": {"name": "web-template"}}},
        {"op": "upsert", "resource": {
            "id": "subnet-0inv00000001", "account": ACCOUNT, "region": "us-east-1",
            "attributes": {"vpc_id": "vpc-0inv", "availability_zone": "us-east-1a",
                           "default_for_az": True, "cidrs": ["10.9.0.0/24"],
                           "associations": ["subnet-cidr-assoc-0inv"]}}},
    ])
    assert r.status_code == 200, r.text
    key = get(demo_server, "key-0inv00000000001").json()["resource"]
    assert key["kind"] == "key-pair" and key["attributes"] == {"name": "deploy"}
    lt = get(demo_server, "lt-0inv000000000001").json()["resource"]
    assert lt["kind"] == "launch-template" and lt["attributes"]["name"] == "web-template"
    subnet = get(demo_server, "subnet-0inv00000001").json()["resource"]["attributes"]
    assert subnet["default_for_az"] is True
    assert subnet["associations"] == ["subnet-cidr-assoc-0inv"]
    counts = inventory_status(demo_server)["counts"]
    assert counts["key_pairs"] == before["counts"]["key_pairs"] + 1
    assert counts["launch_templates"] == before["counts"]["launch_templates"] + 1


@pytest.mark.parametrize("change, fragment", [
    ({"op": "frobnicate", "id": "i-0abc"},
     "at `$.changes[1].op`: unknown variant `frobnicate`"),
    ({"op": "upsert", "resource": {
        "id": "sg-0bad", "account": ACCOUNT, "region": "us-east-1",
        "attributes": {"ingress": [{"protocol": "tcp", "cidrs": ["10.0.0.0/33"]}]}}},
     "at `$.changes[1].resource.attributes.ingress[0].cidrs[0]`: `10.0.0.0/33` is not a CIDR block"),
    ({"op": "upsert", "resource": {
        "id": "sg-0bad", "account": ACCOUNT, "region": "us-east-1",
        "attributes": {"ingress": [{"protocol": "tcp", "from_port": 22, "to_port": 70000}]}}},
     "to_port`: 70000 is out of range"),
    ({"op": "upsert", "resource": {"id": "i-0bad", "account": "42", "region": "us-east-1"}},
     "`42` is not a 12-digit AWS account id"),
    ({"op": "upsert", "resource": {"id": "i-0bad", "kind": "volume", "account": ACCOUNT,
                                   "region": "us-east-1"}},
     "`volume` contradicts the id `i-0bad`"),
    ({"op": "upsert", "resource": {"id": "i-0bad", "account": ACCOUNT, "region": "us-east-1",
                                   "attributes": {"instance_typo": "t3.micro"}}},
     "unknown field `instance_typo`"),
    ({"op": "upsert", "resource": {"id": "i-0bad", "account": ACCOUNT, "region": "us-east-1",
                                   "attributes": {"addresses": ["10.0.0.300"]}}},
     "`10.0.0.300` is not an IP address"),
    ({"op": "upsert", "resource": {"id": "sg-0bad", "account": ACCOUNT, "region": "us-east-1",
                                   "attributes": {"instance_type": "t3.micro"}}},
     "at `$.changes[1].resource.attributes.instance_type`: a `security-group` has no `instance_type`"),
    ({"op": "upsert", "resource": {"id": "key-0bad", "account": ACCOUNT, "region": "us-east-1",
                                   "attributes": {"name": ""}}},
     "at `$.changes[1].resource.attributes.name`: a name is 1 to 255 characters"),
    ({"op": "delete"}, "missing field `id`"),
    ({"op": "delete", "id": "i-0abc", "add": []}, "not a field of `delete`"),
    ({"op": "grants", "id": "ami-0abc", "add": [{"user": ACCOUNT}]}, "unknown variant `user`"),
])
def test_bad_input_is_refused_whole_with_a_clear_message(demo_server, change, fragment):
    before = inventory_status(demo_server)
    r = post(demo_server, [{"op": "upsert", "resource": instance("i-0never00000000001")}, change])
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["code"] == "bad_request"
    assert fragment in err["message"], err["message"]
    # Nothing of the batch was applied, not even its valid first change.
    assert get(demo_server, "i-0never00000000001").status_code == 404
    assert inventory_status(demo_server)["batches"] == before["batches"]


def test_limits_methods_and_media_type(tmp_path):
    server = start_with_control(tmp_path, "--max-inventory-batch", "5")
    auth = server.auth
    try:
        changes = [{"op": "delete", "id": f"i-0{n:016x}"} for n in range(6)]
        r = post(server, changes)
        assert r.status_code == 400
        assert r.json()["error"] == {"code": "batch_too_large",
                                     "message": "batch of 6 items exceeds the limit of 5"}
        assert post(server, changes[:5]).status_code == 200
        r = requests.post(server.control + "/v1/inventory", data="{", timeout=10,
                          headers={"content-type": "application/json", **auth})
        assert r.status_code == 400
        r = requests.post(server.control + "/v1/inventory", data="x=1", timeout=10,
                          headers={"content-type": "application/x-www-form-urlencoded", **auth})
        assert r.status_code == 415
        assert requests.get(server.control + "/v1/inventory", headers=auth,
                            timeout=10).status_code == 405
        assert requests.delete(server.control + "/v1/inventory/i-0abc", headers=auth,
                               timeout=10).status_code == 405
        r = requests.post(server.control + "/v1/inventory", json={"changes": [], "extra": 1},
                          headers=auth, timeout=10)
        assert r.status_code == 400 and "unknown field `extra`" in r.text
        # A resource id is read from the path as sent: a percent-escape is
        # not decoded into an id the charset allows, and a slash is refused,
        # not routed elsewhere.
        # (http.client sends the path as written; requests would decode
        # `%30` to `0` itself.)
        host = server.control.removeprefix("http://")
        for path in ("i-0abc%30", "i-0abc/x", "i-0abc%2Fx"):
            conn = http.client.HTTPConnection(host, timeout=10)
            conn.request("GET", f"/v1/inventory/{path}", headers=auth)
            r = conn.getresponse()
            body = json.loads(r.read())
            conn.close()
            assert r.status == 400 and body["error"]["code"] == "bad_request", (path, body)
            assert f"`{path}` is not an EC2 id" in body["error"]["message"], body
        r = requests.get(f"{server.control}/v1/inventory/", headers=auth, timeout=10)
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
        r = requests.get(f"{server.control}/v1/inventory/cli", headers=auth, timeout=10)
        assert r.status_code == 405 and r.json()["error"]["code"] == "method_not_allowed"
    finally:
        server.stop()


# ── gRPC ──────────────────────────────────────────────────────────────────

@pytest.fixture(scope="session")
def inv_pb(tmp_path_factory):
    """(inventory_pb2, inventory_pb2_grpc), generated from the repo's proto."""
    return grpc_stubs(tmp_path_factory, "inventory")


def test_grpc_apply_and_get(demo_server, inv_pb):
    pb2, pb2_grpc = inv_pb
    md = demo_server.grpc_auth
    with grpc.insecure_channel(demo_server.addrs["control"]) as ch:
        stub = pb2_grpc.InventoryStub(ch)
        volume = pb2.InventoryResource(
            id="vol-0grpc000000001", account=ACCOUNT, region="us-east-1",
            tags={"volume_user": "bob"},
            attributes=pb2.InventoryAttributes(volume_size=20, volume_type="gp3",
                                               encrypted=True, attached_to="i-0abc"))
        snapshot = pb2.InventoryResource(
            id="snap-0grpc00000001", kind="snapshot", account="222222222222", region="us-east-1",
            attributes=pb2.InventoryAttributes(grants=[pb2.InventoryGrant(account=ACCOUNT)]))
        resp = stub.Apply(pb2.ApplyInventoryRequest(changes=[
            pb2.InventoryChange(upsert=volume),
            pb2.InventoryChange(upsert=snapshot),
            pb2.InventoryChange(grants=pb2.InventoryGrantsChange(
                id="snap-0grpc00000001",
                add=[pb2.InventoryGrant(organization="arn:aws:organizations::222222222222:organization/o-abc")])),
            pb2.InventoryChange(delete=pb2.InventoryDelete(id="vol-0nosuch0000000")),
        ]), timeout=10, metadata=md)
        assert (resp.applied.upserted, resp.applied.grants_changed, resp.applied.not_found) == (2, 1, 1)
        assert resp.counts.volumes >= 1 and resp.counts.snapshots >= 1

        got = stub.Get(pb2.GetInventoryResourceRequest(id="vol-0grpc000000001"), timeout=10, metadata=md).resource
        assert got.kind == "volume" and got.tags["volume_user"] == "bob"
        assert got.attributes.volume_size == 20 and got.attributes.encrypted
        snap = stub.Get(pb2.GetInventoryResourceRequest(id="snap-0grpc00000001"), timeout=10, metadata=md).resource
        assert [g.WhichOneof("grantee") for g in snap.attributes.grants] == ["account", "organization"]
        # The same resource, seen over HTTP.
        http = get(demo_server, "vol-0grpc000000001").json()["resource"]
        assert http["attributes"]["volume_type"] == "gp3"

        with pytest.raises(grpc.RpcError) as e:
            stub.Get(pb2.GetInventoryResourceRequest(id="vol-0nosuch0000000"), timeout=10, metadata=md)
        assert e.value.code() == grpc.StatusCode.NOT_FOUND

        bad = pb2.InventoryResource(
            id="sg-0grpcbad", account=ACCOUNT, region="us-east-1",
            attributes=pb2.InventoryAttributes(
                ingress=[pb2.InventoryRule(protocol="tcp", cidrs=["300.0.0.0/8"])]))
        with pytest.raises(grpc.RpcError) as e:
            stub.Apply(pb2.ApplyInventoryRequest(changes=[
                pb2.InventoryChange(upsert=volume), pb2.InventoryChange(upsert=bad)]), timeout=10, metadata=md)
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "changes[1].upsert.attributes.ingress[0].cidrs[0]" in e.value.details()
        with pytest.raises(grpc.RpcError) as e:
            stub.Apply(pb2.ApplyInventoryRequest(changes=[pb2.InventoryChange()]), timeout=10, metadata=md)
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "no op set" in e.value.details()
        with pytest.raises(grpc.RpcError) as e:
            stub.Apply(pb2.ApplyInventoryRequest(changes=[
                pb2.InventoryChange(upsert=pb2.InventoryResource(
                    id="i-0abc", kind="vm", account=ACCOUNT, region="us-east-1"))]), timeout=10, metadata=md)
        assert "unknown kind `vm`" in e.value.details()
    assert get(demo_server, "sg-0grpcbad").status_code == 404


def test_grpc_batch_limit(tmp_path, inv_pb):
    pb2, pb2_grpc = inv_pb
    server = start_with_control(tmp_path, "--max-inventory-batch", "2")
    md = server.grpc_auth
    try:
        with grpc.insecure_channel(server.addrs["control"]) as ch:
            stub = pb2_grpc.InventoryStub(ch)
            changes = [pb2.InventoryChange(delete=pb2.InventoryDelete(id=f"i-0{n}")) for n in range(3)]
            with pytest.raises(grpc.RpcError) as e:
                stub.Apply(pb2.ApplyInventoryRequest(changes=changes), timeout=10, metadata=md)
            assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "exceeds the limit of 2" in e.value.details()
    finally:
        server.stop()


# ── Decisions during a burst of updates ───────────────────────────────────

def test_decisions_keep_flowing_during_a_burst_of_updates(demo_server, inv_pb):
    pb2, pb2_grpc = inv_pb
    stop = threading.Event()
    errors = []
    decided = [0]
    applied = [0]

    def decide():
        with requests.Session() as s:
            while not stop.is_set():
                r = s.post(demo_server.http + "/v1/authorize", timeout=10, json={
                    "principal": {"arn": BOB},
                    "action": "ec2:StartInstances",
                    "resource": "arn:aws:ec2:us-east-1:111111111111:instance/i-0abc",
                    "context": {"aws:RequestedRegion": "us-east-1", "ec2:ResourceTag/team": "blue"},
                })
                if r.status_code != 200 or r.json()["decision"] != "allowed":
                    errors.append(("decide", r.status_code, r.text))
                decided[0] += 1

    def update_http(worker):
        with requests.Session() as s:
            for batch in range(15):
                changes = [{"op": "upsert", "resource": instance(f"i-0b{worker}{batch:03d}{n:04d}")}
                           for n in range(100)]
                changes += [{"op": "delete", "id": f"i-0b{worker}{batch:03d}{n:04d}"}
                            for n in range(0, 100, 2)]
                r = s.post(demo_server.control + "/v1/inventory", json={"changes": changes},
                           headers=demo_server.auth, timeout=30)
                if r.status_code != 200:
                    errors.append(("update", r.status_code, r.text))
                applied[0] += 1

    def update_grpc():
        with grpc.insecure_channel(demo_server.addrs["control"]) as ch:
            stub = pb2_grpc.InventoryStub(ch)
            for batch in range(15):
                changes = [pb2.InventoryChange(upsert=pb2.InventoryResource(
                    id=f"vol-0g{batch:03d}{n:04d}", account=ACCOUNT, region="us-east-1"))
                    for n in range(100)]
                stub.Apply(pb2.ApplyInventoryRequest(changes=changes), timeout=30,
                           metadata=demo_server.grpc_auth)
                applied[0] += 1

    before = inventory_status(demo_server)
    deciders = [threading.Thread(target=decide) for _ in range(4)]
    updaters = [threading.Thread(target=update_http, args=(w,)) for w in range(2)]
    updaters.append(threading.Thread(target=update_grpc))
    for t in deciders + updaters:
        t.start()
    for t in updaters:
        t.join(timeout=120)
    stop.set()
    for t in deciders:
        t.join(timeout=30)

    assert not errors, errors[:3]
    assert applied[0] == 45
    assert decided[0] > 0
    status = inventory_status(demo_server)
    # 2 workers x 15 batches x (100 upserts - 50 deletes), and 15 x 100 volumes.
    assert status["counts"]["instances"] == before["counts"]["instances"] + 2 * 15 * 50
    assert status["counts"]["volumes"] == before["counts"]["volumes"] + 15 * 100
    assert status["batches"] == before["batches"] + 45
