"""TLS on the API listener: server certificates, client-certificate
verification (mTLS), and certificate rotation without a restart."""

import socket
import ssl
import subprocess
import time

import pytest
import requests

from conftest import start_server

BOB = "arn:aws:iam::111111111111:user/engineering/bob"
BODY = {"principal": {"arn": BOB}, "action": "ec2:DescribeInstances", "resource": "*",
        "context": {"aws:RequestedRegion": "us-east-1"}}


def openssl(*args):
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def make_ca(d, name):
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", str(d / f"{name}.key"), "-out", str(d / f"{name}.pem"),
            "-days", "2", "-subj", f"/CN={name}",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")


def make_leaf(d, name, ca, san, client=False):
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", str(d / f"{name}.key"), "-out", str(d / f"{name}.csr"), "-subj", f"/CN={name}")
    ext = d / f"{name}.ext"
    usage = "clientAuth" if client else "serverAuth"
    ext.write_text(f"subjectAltName={san}\nextendedKeyUsage={usage}\nbasicConstraints=CA:FALSE\n")
    openssl("x509", "-req", "-in", str(d / f"{name}.csr"), "-CA", str(d / f"{ca}.pem"),
            "-CAkey", str(d / f"{ca}.key"), "-CAcreateserial", "-out", str(d / f"{name}.pem"),
            "-days", "2", "-extfile", str(ext))


@pytest.fixture
def pki(tmp_path):
    make_ca(tmp_path, "ca")
    make_leaf(tmp_path, "server", "ca", "IP:127.0.0.1,DNS:localhost")
    make_leaf(tmp_path, "client", "ca", "URI:spiffe://demo/ns/ops/sa/bob", client=True)
    return tmp_path


def peer_cert(addr, ca):
    host, port = addr.rsplit(":", 1)
    ctx = ssl.create_default_context(cafile=str(ca))
    with socket.create_connection((host, int(port)), timeout=5) as s:
        with ctx.wrap_socket(s, server_hostname=host) as t:
            return t.getpeercert(binary_form=True)


def test_tls_and_rotation(pki, tmp_path):
    server = start_server(tmp_path, "--tls-cert", str(pki / "server.pem"),
                          "--tls-key", str(pki / "server.key"))
    https = "https://" + server.addrs["http"]
    try:
        r = requests.post(https + "/v1/authorize", json=BODY, verify=str(pki / "ca.pem"), timeout=10)
        assert r.status_code == 200 and r.json()["decision"] == "allowed"
        with pytest.raises(requests.RequestException):
            requests.post(server.http + "/v1/authorize", json=BODY, timeout=5)
        before = peer_cert(server.addrs["http"], pki / "ca.pem")
        # Rotate: a new key and certificate in place of the old ones.
        make_leaf(pki, "server2", "ca", "IP:127.0.0.1,DNS:localhost")
        (pki / "server.key").write_bytes((pki / "server2.key").read_bytes())
        (pki / "server.pem").write_bytes((pki / "server2.pem").read_bytes())
        deadline = time.monotonic() + 15
        after = before
        while time.monotonic() < deadline and after == before:
            time.sleep(0.5)
            after = peer_cert(server.addrs["http"], pki / "ca.pem")
        assert after != before, "the rotated certificate was not picked up"
        r = requests.post(https + "/v1/authorize", json=BODY, verify=str(pki / "ca.pem"), timeout=10)
        assert r.status_code == 200
    finally:
        assert server.stop() == 0


def test_client_certificates_required(pki, tmp_path):
    server = start_server(tmp_path, "--tls-cert", str(pki / "server.pem"),
                          "--tls-key", str(pki / "server.key"),
                          "--tls-client-ca", str(pki / "ca.pem"))
    https = "https://" + server.addrs["http"]
    try:
        with pytest.raises(requests.RequestException):
            requests.post(https + "/v1/authorize", json=BODY, verify=str(pki / "ca.pem"), timeout=5)
        r = requests.post(https + "/v1/authorize", json=BODY, verify=str(pki / "ca.pem"),
                          cert=(str(pki / "client.pem"), str(pki / "client.key")), timeout=10)
        assert r.status_code == 200 and r.json()["decision"] == "allowed"
    finally:
        assert server.stop() == 0


def test_unusable_tls_files_refuse_to_start(tmp_path):
    (tmp_path / "bad.pem").write_text("not a certificate")
    with pytest.raises(RuntimeError):
        start_server(tmp_path, "--tls-cert", str(tmp_path / "bad.pem"),
                     "--tls-key", str(tmp_path / "bad.pem"), timeout=10)


def test_grpc_over_tls(pki, tmp_path):
    import grpc
    server = start_server(tmp_path, "--tls-cert", str(pki / "server.pem"),
                          "--tls-key", str(pki / "server.key"))
    try:
        creds = grpc.ssl_channel_credentials(root_certificates=(pki / "ca.pem").read_bytes())
        with grpc.secure_channel(server.grpc, creds) as channel:
            grpc.channel_ready_future(channel).result(timeout=10)
            from grpc_health.v1 import health_pb2, health_pb2_grpc
            stub = health_pb2_grpc.HealthStub(channel)
            reply = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
    finally:
        assert server.stop() == 0
