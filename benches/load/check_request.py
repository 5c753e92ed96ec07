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
