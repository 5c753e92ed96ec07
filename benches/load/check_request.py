#!/usr/bin/env python3
"""An Envoy ext_authz v3 CheckRequest for the load benchmark, hand-encoded.

    check_request.py frame BENCH_JSON OUT.bin
        Encodes the CheckRequest Envoy would send for the bench request
        (principal header, route context_extensions, headers, source and
        destination addresses) and writes it gRPC-framed (1-byte compressed
        flag, 4-byte big-endian length, message) for `h2load -d`.

    check_request.py verify HOST:PORT OUT.bin [N] [--expect-allowed|--expect-denied]
        Sends the framed request N times (default 200) with grpcio (an
        independent gRPC stack, raw bytes, no generated stubs), requires
        grpc-status OK on every call, decodes each CheckResponse and requires
        status.code 0 with an ok_response. With --expect-allowed, also
        requires iamgate's dynamic_metadata decision "allowed". With
        --expect-denied, requires status PERMISSION_DENIED (7) with a 403
        denied_response instead. Prints one JSON line.

    check_request.py authorize BENCH_JSON
        Prints the same request as a `POST /v1/authorize` body (principal,
        action, resource and the context keys the bench policies test), for
        the HTTP/JSON rounds.

    check_request.py credentials BENCH_JSON OUT.json
        Writes a credentials file (`aws iam create-access-key`'s shape, with
        `UserArn`) holding one active access key, with a fresh random secret,
        for the bench user (issue 13).

    check_request.py signed BENCH_JSON CREDENTIALS_JSON OUT.bin
        The same call on a generic SigV4 route (`iamgate.auth: sigv4`,
        scope REGION/ec2): a JSON body forwarded as Envoy's
        with_request_body does, signed with AWS Signature Version 4
        (`Authorization` header, `X-Amz-Date` now) by the key in the
        credentials file, no principal header: the caller comes from the
        signature alone. Also writes OUT.tampered.bin (the body changed
        after signing, so the signature no longer matches). Signed at the
        time of the call: re-sign within 5 minutes of use (the skew rule).

Only the handful of protobuf fields used are encoded; field numbers are
from envoy/service/auth/v3/{external_auth,attribute_context}.proto and
envoy/config/core/v3/address.proto (as shipped in the envoy-types crate).
"""

import json
import struct
import sys

CHECK_METHOD = "/envoy.service.auth.v3.Authorization/Check"

# ── a tiny protobuf encoder ─────────────────────────────────────────────


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def key(field, wire):
    return varint((field << 3) | wire)


def f_varint(field, n):
    return key(field, 0) + varint(n) if n else b""


def f_bytes(field, data):
    if isinstance(data, str):
        data = data.encode()
    return key(field, 2) + varint(len(data)) + data if data else b""


def f_msg(field, body):
    # Present even when empty (message fields have presence).
    return key(field, 2) + varint(len(body)) + body


def f_map(field, mapping):
    return b"".join(f_msg(field, f_bytes(1, k) + f_bytes(2, v)) for k, v in mapping.items())


def peer(ip, port):
    socket_address = f_bytes(2, ip) + f_varint(3, port)  # SocketAddress.address, port_value
    address = f_msg(1, socket_address)                    # Address.socket_address
    return f_msg(1, address)                              # Peer.address


HOST = "ec2.internal.example.com"


def request_path(b):
    return f"/v1/instances/{b['instance']}/Stop"


def request_headers(b, team=None):
    """The headers Envoy would pass (pseudo-headers included)."""
    path, host = request_path(b), HOST
    return {
        ":authority": host,
        ":method": "POST",
        ":path": path,
        ":scheme": "https",
        "accept": "application/json",
        "content-length": "0",
        "content-type": "application/json",
        "user-agent": "aws-sdk-go-v2/1.30.3 os/linux lang/go#1.22.5 api/ec2#1.171.0",
        "x-forwarded-for": b["source_ip"],
        "x-forwarded-proto": "https",
        "x-request-id": "4a8c2f3e-9b1d-4c7a-8e2f-1d3b5a7c9e0f",
        "x-envoy-expected-rq-timeout-ms": "15000",
        "x-iamgate-principal": b["principal"],
        "x-resource-team": team or b["team"],
    }


def check_request(b, team=None):
    path, host = request_path(b), HOST
    headers = request_headers(b, team)
    http = (f_bytes(1, "10335876931405286416")  # id
            + f_bytes(2, "POST")                # method
            + f_map(3, headers)                 # headers
            + f_bytes(4, path)
            + f_bytes(5, host)
            + f_bytes(6, "https")
            + f_bytes(10, "HTTP/1.1"))          # protocol
    timestamp = f_varint(1, 1_790_000_000) + f_varint(2, 123_000_000)
    request = f_msg(1, timestamp) + f_msg(2, http)
    extensions = {
        "iamgate.action": "ec2:{path.3}Instances",
        "iamgate.resource": f"arn:aws:ec2:{b['region']}:{b['account']}:instance/{{path.2}}",
        "iamgate.context.ec2:ResourceTag/team": "{header.x-resource-team}",
        "iamgate.context.aws:RequestedRegion": b["region"],
    }
    attrs = (f_msg(1, peer(b["source_ip"], 51234))   # source
             + f_msg(2, peer("10.0.0.10", 8443))     # destination
             + f_msg(4, request)                     # request
             + f_map(10, extensions))                # context_extensions
    return f_msg(1, attrs)                           # CheckRequest.attributes


# ── SigV4 (issue 13): the signed variant ────────────────────────────────

SIGNED_BODY = '{"Force":false,"Hibernate":false}'
SIGNED_HEADERS = ("content-type", "host", "x-amz-date", "x-resource-team")


def credentials(b):
    import base64
    import os

    user = b["principal"].rsplit("/", 1)[-1]
    return [{"AccessKey": {"UserName": user, "AccessKeyId": "AKIALOADBENCH0000001",
                           "Status": "Active",
                           "SecretAccessKey": base64.b64encode(os.urandom(30)).decode(),
                           "CreateDate": "2026-01-01T00:00:00+00:00"},
             "UserArn": b["principal"]}]


def sigv4_authorization(key, method, path, headers, body, region, service, amz_date):
    """AWS Signature Version 4 (header form), from the published algorithm."""
    import hashlib
    import hmac

    names = sorted(SIGNED_HEADERS)
    canonical = "\n".join([
        method, path, "",
        "".join(f"{n}:{' '.join(headers[n].split())}\n" for n in names),
        ";".join(names),
        hashlib.sha256(body.encode()).hexdigest(),
    ])
    scope = f"{amz_date[:8]}/{region}/{service}/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope,
                         hashlib.sha256(canonical.encode()).hexdigest()])
    k = ("AWS4" + key["SecretAccessKey"]).encode()
    for part in (amz_date[:8], region, service, "aws4_request"):
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    sig = hmac.new(k, to_sign.encode(), hashlib.sha256).hexdigest()
    return (f"AWS4-HMAC-SHA256 Credential={key['AccessKeyId']}/{scope}, "
            f"SignedHeaders={';'.join(names)}, Signature={sig}")


def signed_check_request(b, key, amz_date, body_after_signing=None):
    path, host = request_path(b), HOST
    headers = request_headers(b)
    del headers["x-iamgate-principal"]
    headers["content-length"] = str(len(SIGNED_BODY))
    headers["x-amz-date"] = amz_date
    # Envoy's with_request_body sets this on the check request.
    headers["x-envoy-auth-partial-body"] = "false"
    sign_view = dict(headers, host=host)
    headers["authorization"] = sigv4_authorization(
        key, "POST", path, sign_view, SIGNED_BODY, b["region"], "ec2", amz_date)
    body = body_after_signing if body_after_signing is not None else SIGNED_BODY
    http = (f_bytes(1, "10335876931405286416")
            + f_bytes(2, "POST")
            + f_map(3, headers)
            + f_bytes(4, path)
            + f_bytes(5, host)
            + f_bytes(6, "https")
            + f_varint(9, len(body))            # size
            + f_bytes(10, "HTTP/1.1")
            + f_bytes(11, body))                # body
    timestamp = f_varint(1, 1_790_000_000) + f_varint(2, 123_000_000)
    request = f_msg(1, timestamp) + f_msg(2, http)
    extensions = {
        "iamgate.auth": "sigv4",
        "iamgate.region": b["region"],
        "iamgate.service": "ec2",
        "iamgate.action": "ec2:{path.3}Instances",
        "iamgate.resource": f"arn:aws:ec2:{b['region']}:{b['account']}:instance/{{path.2}}",
        "iamgate.context.ec2:ResourceTag/team": "{header.x-resource-team}",
        "iamgate.context.aws:RequestedRegion": b["region"],
    }
    attrs = (f_msg(1, peer(b["source_ip"], 51234))
             + f_msg(2, peer("10.0.0.10", 8443))
             + f_msg(4, request)
             + f_map(10, extensions))
    return f_msg(1, attrs), len(headers)


def frame(msg):
    return b"\x00" + struct.pack(">I", len(msg)) + msg


# ── a tiny protobuf decoder: field number → list of values ──────────────


def decode(buf):
    fields, i = {}, 0
    while i < len(buf):
        tag, i = read_varint(buf, i)
        field, wire = tag >> 3, tag & 7
        if wire == 0:
            val, i = read_varint(buf, i)
        elif wire == 2:
            n, i = read_varint(buf, i)
            val, i = buf[i:i + n], i + n
        elif wire == 1:
            val, i = buf[i:i + 8], i + 8
        elif wire == 5:
            val, i = buf[i:i + 4], i + 4
        else:
            raise ValueError(f"wire type {wire}")
        fields.setdefault(field, []).append(val)
    return fields


def read_varint(buf, i):
    shift = n = 0
    while True:
        b = buf[i]
        i += 1
        n |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return n, i


def describe(resp_bytes):
    """The parts of a CheckResponse the benchmark cares about."""
    r = decode(resp_bytes)
    status = decode(r[1][0]) if 1 in r else {}
    out = {"status_code": status.get(1, [0])[0],
           "http_response": ("ok_response" if 3 in r else "denied_response" if 2 in r
                             else "error_response" if 5 in r else None)}
    if 4 in r:  # dynamic_metadata: Struct.fields map<string, Value>
        meta = {}
        for entry in decode(r[4][0]).get(1, []):
            e = decode(entry)
            k = e[1][0].decode()
            v = decode(e[2][0]) if 2 in e else {}
            if 3 in v:  # Value.string_value
                meta[k] = v[3][0].decode()
        out["metadata"] = meta
    return out


def verify(target, path, n, expect):
    import grpc  # from the benchmark's venv

    framed = open(path, "rb").read()
    msg = framed[5:]
    with grpc.insecure_channel(target) as ch:
        call = ch.unary_unary(CHECK_METHOD, request_serializer=None, response_deserializer=None)
        first, bad = None, 0
        for _ in range(n):
            resp, c = call.with_call(msg, timeout=5)
            d = describe(resp)
            d["response_bytes"] = len(resp)
            d["grpc_status"] = c.code().name
            ok = c.code() == grpc.StatusCode.OK
            if expect == "denied":
                ok = ok and d["status_code"] == 7 and d["http_response"] == "denied_response"
            else:
                ok = ok and d["status_code"] == 0 and d["http_response"] == "ok_response"
            if expect == "allowed":
                ok = ok and d.get("metadata", {}).get("decision") == "allowed"
            bad += not ok
            first = first or d
    print(json.dumps({"target": target, "calls": n, "failed": bad, "sample": first}))
    return bad == 0


def main():
    if len(sys.argv) >= 4 and sys.argv[1] == "frame":
        b = json.load(open(sys.argv[2]))
        data = frame(check_request(b))
        open(sys.argv[3], "wb").write(data)
        other = next(t for t in ("blue", "green", "red") if t != b["team"])
        deny_path = sys.argv[3].removesuffix(".bin") + ".deny.bin"
        open(deny_path, "wb").write(frame(check_request(b, team=other)))
        print(json.dumps({"file": sys.argv[3], "bytes": len(data) - 5,
                          "headers": len(request_headers(b))}))
    elif len(sys.argv) == 3 and sys.argv[1] == "authorize":
        b = json.load(open(sys.argv[2]))
        print(json.dumps({"principal": {"arn": b["principal"]}, "action": b["action"],
                          "resource": b["resource"],
                          "context": {"ec2:ResourceTag/team": b["team"],
                                      "aws:RequestedRegion": b["region"],
                                      "aws:SourceIp": b["source_ip"],
                                      "aws:SecureTransport": "true"}}))
    elif len(sys.argv) == 4 and sys.argv[1] == "credentials":
        b = json.load(open(sys.argv[2]))
        with open(sys.argv[3], "w") as f:
            json.dump(credentials(b), f)
    elif len(sys.argv) == 5 and sys.argv[1] == "signed":
        import time

        b = json.load(open(sys.argv[2]))
        key = json.load(open(sys.argv[3]))[0]["AccessKey"]
        amz_date = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        msg, n_headers = signed_check_request(b, key, amz_date)
        open(sys.argv[4], "wb").write(frame(msg))
        # Same length (content-length still holds), different bytes.
        tampered, _ = signed_check_request(b, key, amz_date, SIGNED_BODY.replace("Hibernate", "hibernate"))
        open(sys.argv[4].removesuffix(".bin") + ".tampered.bin", "wb").write(frame(tampered))
        print(json.dumps({"file": sys.argv[4], "bytes": len(msg), "headers": n_headers,
                          "amz_date": amz_date}))
    elif len(sys.argv) >= 4 and sys.argv[1] == "verify":
        rest = [a for a in sys.argv[4:] if not a.startswith("--")]
        n = int(rest[0]) if rest else 200
        expect = ("allowed" if "--expect-allowed" in sys.argv
                  else "denied" if "--expect-denied" in sys.argv else "ok")
        sys.exit(0 if verify(sys.argv[2], sys.argv[3], n, expect) else 1)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
