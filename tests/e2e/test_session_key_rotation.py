"""Issue 13, "sealed under a key from a file, with a key id for rotation":
the session key file (`--session-key`) is re-read when it changes, like the
credentials file, so an operator rotates keys without a restart: a new key
listed first seals new sessions while the old one still opens its
sessions; dropping the old key refuses them; a broken file keeps the last
good keys serving and says why (log, `/v1/status`, metric). Clients: boto3
against iamgate's STS listener (the same keys verify EC2 calls on the
ext_authz path).
"""

import base64
import json
import secrets

import pytest
import requests

from conftest import start_server, wait_for
from test_sigv4_ec2 import key
from test_sts import OPERATOR, REGION, write_bundle

pytest.importorskip("boto3")
import boto3  # noqa: E402
from botocore.config import Config  # noqa: E402
from botocore.exceptions import ClientError  # noqa: E402


def sealing_key_id(token):
    """The key id a session token names (its header: version, id length, id)."""
    raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    return raw[2:2 + raw[1]].decode()


def sts(url, access_key_id, secret, token=None):
    return boto3.client("sts", endpoint_url=url, region_name=REGION,
                        aws_access_key_id=access_key_id, aws_secret_access_key=secret,
                        aws_session_token=token, config=Config(retries={"max_attempts": 1}))


def test_session_key_rotation_without_restart(tmp_path):
    """Issue 13: rotate the session key file under a running iamgate."""
    write_bundle(tmp_path / "bundle")
    alice = key("alice")["AccessKey"]
    (tmp_path / "credentials.json").write_text(json.dumps([{"AccessKey": alice}]))
    keys = tmp_path / "session.keys"
    old_line = f"old {secrets.token_hex(32)}\n"
    keys.write_text(old_line)
    server = start_server(tmp_path, "--no-watch", "--bundle", str(tmp_path / "bundle"),
                          "--credentials", str(tmp_path / "credentials.json"),
                          "--session-key", str(keys), "--sts-listen", "127.0.0.1:0")
    try:
        url = "http://" + server.addrs["sts"]
        user = sts(url, alice["AccessKeyId"], alice["SecretAccessKey"])

        def session(name):
            c = user.assume_role(RoleArn=OPERATOR, RoleSessionName=name)["Credentials"]
            return c

        def works(c):
            try:
                sts(url, c["AccessKeyId"], c["SecretAccessKey"],
                    c["SessionToken"]).get_caller_identity()
                return True
            except ClientError as e:
                assert e.response["Error"]["Code"] == "InvalidClientTokenId", e.response
                return False

        def status():
            return requests.get(server.admin + "/v1/status", timeout=10).json()["session_keys"]

        first = session("before")
        assert sealing_key_id(first["SessionToken"]) == "old"
        assert works(first)

        # Rotation, step 1: the new key first; the old one still listed.
        keys.write_text(f"# rotated\nnew {secrets.token_hex(32)}\n" + old_line)
        assert wait_for(lambda: status()["sealing_key_id"] == "new", timeout=10), server.log()
        assert status()["key_ids"] == ["new", "old"]
        second = session("after")
        assert sealing_key_id(second["SessionToken"]) == "new"
        assert works(first) and works(second)

        # A broken file: refused with the line, the keys above keep serving.
        new_line = keys.read_text().splitlines()[1] + "\n"
        keys.write_text(new_line + "old zz-not-a-key\n")
        assert wait_for(lambda: status()["refused"] is not None, timeout=10), server.log()
        assert "line 2" in status()["refused"]
        assert "zz-not-a-key" not in server.log() + json.dumps(status())
        assert status()["key_ids"] == ["new", "old"]
        assert works(first) and works(second)
        metrics = requests.get(server.admin + "/metrics", timeout=10).text
        assert 'iamgate_session_key_reloads_total{result="refused"} 1' in metrics

        # Rotation, step 2: the old key dropped refuses the sessions it sealed.
        keys.write_text(new_line)
        assert wait_for(lambda: status()["key_ids"] == ["new"], timeout=10), server.log()
        assert status()["refused"] is None
        assert not works(first)
        assert works(second)
        metrics = requests.get(server.admin + "/metrics", timeout=10).text
        assert 'iamgate_session_key_reloads_total{result="loaded"} 2' in metrics
    finally:
        server.stop()
