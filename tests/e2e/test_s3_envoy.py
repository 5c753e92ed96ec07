"""Issue 12: a second service through the service seam. iamgate's S3
mapping (`iamgate.mapping: s3`, src/s3) behind the real Envoy, in front of
a real S3-compatible store (moto server), driven by boto3: path-style
bucket and object calls become the IAM requests S3 authorizes
(`s3:GetObject` on `arn:aws:s3:::bucket/key`, `s3:ListBucket` with
`s3:prefix`, a copy's read of its source), a denial reaches boto3 as S3's
`AccessDenied` error worded as AWS words it, and nothing denied reaches
the store.

alice may read, write and list her own prefix `home/alice/` of bucket
`photos`; bob may read anything in `photos` and write nothing.
"""

import json
import os
import pathlib
import socket
import subprocess
import sys
import time

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from conftest import start_server
from envoy_util import Envoy, envoy_binary
from jwt_util import PAYLOAD_KEY, Issuer

HERE = pathlib.Path(__file__).resolve().parent / "s3"
VENV_BIN = pathlib.Path(sys.executable).parent
ACCOUNT = "111111111111"
ALICE = f"arn:aws:iam::{ACCOUNT}:user/alice"
BOB = f"arn:aws:iam::{ACCOUNT}:user/bob"
BUCKET = "photos"


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _bundle(path):
    def user(name, statements):
        return {
            "Path": "/", "UserName": name, "UserId": f"AIDA{name.upper()}",
            "Arn": f"arn:aws:iam::{ACCOUNT}:user/{name}",
            "UserPolicyList": [{"PolicyName": "s3", "PolicyDocument": {
                "Version": "2012-10-17", "Statement": statements}}],
        }
    alice = [
        {"Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
         "Resource": f"arn:aws:s3:::{BUCKET}/home/${{aws:username}}/*"},
        {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": f"arn:aws:s3:::{BUCKET}",
         "Condition": {"StringLike": {"s3:prefix": "home/${aws:username}/*"}}},
    ]
    bob = [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{BUCKET}/*"}]
    (path / "iam").mkdir(parents=True)
    (path / "iam" / f"{ACCOUNT}.json").write_text(json.dumps({
        "UserDetailList": [user("alice", alice), user("bob", bob)],
        "GroupDetailList": [], "RoleDetailList": [], "Policies": []}))
    return path


class S3Stack:
    """moto (the store) + iamgate + Envoy; `client(user)` is boto3 against
    Envoy with the user's verified JWT, `store` boto3 straight to moto."""

    def __init__(self, tmp_path):
        self.issuer = Issuer()
        port = _free_port()
        self.moto_log = open(tmp_path / "moto.log", "w")
        self.moto = subprocess.Popen(
            [str(VENV_BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
            stdout=self.moto_log, stderr=self.moto_log)
        self.server = start_server(
            tmp_path, "--bundle", str(_bundle(tmp_path / "bundle")), "--no-watch",
            "--jwt-principal", f"{PAYLOAD_KEY}:sub=arn:aws:iam::{ACCOUNT}:user/{{claim}}")
        self.envoy = None
        try:
            deadline = time.monotonic() + 20
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.1)
            grpc_port = int(self.server.grpc.rsplit(":", 1)[1])
            self.envoy = Envoy(envoy_binary(), tmp_path, HERE / "bootstrap.yaml",
                               iamgate_grpc_port=grpc_port, store_port=port,
                               jwks=self.issuer.jwks)
        except Exception:
            self.close()
            raise
        self.store = self._boto(f"http://127.0.0.1:{port}")

    def _boto(self, endpoint, token=None):
        client = boto3.client(
            "s3", endpoint_url=endpoint, region_name="us-east-1",
            aws_access_key_id="testing", aws_secret_access_key="testing",
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))
        if token:
            def add_token(request, **_):
                request.headers["x-id-token"] = token
            client.meta.events.register("before-sign.s3", add_token)
        return client

    def client(self, user):
        return self._boto(f"http://127.0.0.1:{self.envoy.port}", self.issuer.token(user))

    def close(self):
        if self.envoy:
            self.envoy.stop()
        self.server.stop()
        self.moto.terminate()
        self.moto.wait(timeout=10)
        print("---- iamgate log (tail) ----\n" + self.server.log()[-6000:])


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    stack = S3Stack(tmp_path_factory.mktemp("s3"))
    stack.store.create_bucket(Bucket=BUCKET)
    stack.store.put_object(Bucket=BUCKET, Key="home/bob/secret.txt", Body=b"bob's")
    yield stack
    stack.close()


def _denied(call):
    with pytest.raises(ClientError) as e:
        call()
    err = e.value.response["Error"]
    return e.value.response["ResponseMetadata"]["HTTPStatusCode"], err["Code"], err.get("Message", "")


def test_allowed_calls_reach_the_store(s3):
    """issue 12: alice writes, reads, lists and deletes in her prefix."""
    alice = s3.client("alice")
    alice.put_object(Bucket=BUCKET, Key="home/alice/cat.txt", Body=b"meow")
    assert alice.get_object(Bucket=BUCKET, Key="home/alice/cat.txt")["Body"].read() == b"meow"
    listed = alice.list_objects_v2(Bucket=BUCKET, Prefix="home/alice/")
    assert [o["Key"] for o in listed["Contents"]] == ["home/alice/cat.txt"]
    assert s3.store.get_object(Bucket=BUCKET, Key="home/alice/cat.txt")["Body"].read() == b"meow"
    alice.delete_object(Bucket=BUCKET, Key="home/alice/cat.txt")
    assert "Contents" not in s3.store.list_objects_v2(Bucket=BUCKET, Prefix="home/alice/")
    # bob reads anything in the bucket.
    bob = s3.client("bob")
    assert bob.get_object(Bucket=BUCKET, Key="home/bob/secret.txt")["Body"].read() == b"bob's"


def test_denials_are_s3_access_denied_and_never_reach_the_store(s3):
    """issue 12: AWS's AccessDenied, as boto3 parses it from S3."""
    bob = s3.client("bob")
    status, code, message = _denied(
        lambda: bob.put_object(Bucket=BUCKET, Key="home/bob/new.txt", Body=b"x"))
    assert (status, code) == (403, "AccessDenied")
    assert message == (
        f"User: {BOB} is not authorized to perform: s3:PutObject on resource: "
        f"\"arn:aws:s3:::{BUCKET}/home/bob/new.txt\" because no identity-based policy "
        "allows the s3:PutObject action")
    with pytest.raises(ClientError):
        s3.store.head_object(Bucket=BUCKET, Key="home/bob/new.txt")

    alice = s3.client("alice")
    # Another user's prefix.
    assert _denied(lambda: alice.get_object(Bucket=BUCKET, Key="home/bob/secret.txt"))[:2] == (
        403, "AccessDenied")
    # Listing: only with her own prefix (s3:prefix from the query).
    status, code, message = _denied(lambda: alice.list_objects_v2(Bucket=BUCKET))
    assert (status, code) == (403, "AccessDenied") and "s3:ListBucket" in message
    assert _denied(lambda: alice.list_objects_v2(Bucket=BUCKET, Prefix="home/bob/"))[1] == (
        "AccessDenied")
    # A copy also reads its source: alice may write her prefix but not read bob's.
    status, code, message = _denied(lambda: alice.copy_object(
        Bucket=BUCKET, Key="home/alice/stolen.txt",
        CopySource={"Bucket": BUCKET, "Key": "home/bob/secret.txt"}))
    assert (status, code) == (403, "AccessDenied")
    assert f"s3:GetObject on resource: \"arn:aws:s3:::{BUCKET}/home/bob/secret.txt\"" in message
    with pytest.raises(ClientError):
        s3.store.head_object(Bucket=BUCKET, Key="home/alice/stolen.txt")


def test_ambiguous_or_anonymous_requests_are_refused(s3):
    """issue 12: refused by iamgate before the store, never guessed."""
    token = {"x-id-token": s3.issuer.token("alice")}
    # A `..` hidden in an encoded slash: bob's object under alice's prefix.
    status, headers, body = s3.envoy.call(
        "GET", f"/{BUCKET}/home/alice/..%2Fbob/secret.txt", headers=token)
    assert status == 400 and b"<Code>InvalidURI</Code>" in body, body
    assert headers["content-type"] == "application/xml"
    # A subresource the mapping does not know.
    status, _, body = s3.envoy.call("GET", f"/{BUCKET}/home/alice/x?acl", headers=token)
    assert status == 501 and b"<Code>NotImplemented</Code>" in body, body
    # No verified caller.
    status, _, _ = s3.envoy.call("GET", f"/{BUCKET}/home/alice/x")
    assert status == 401
