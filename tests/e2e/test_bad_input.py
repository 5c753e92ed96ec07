"""Hostile clients: slow senders, many idle connections, malformed
protocol bytes. The server keeps answering well-behaved clients quickly,
never crashes, and its memory stays bounded."""

import socket
import threading
import time

import requests

from conftest import start_server

BOB = "arn:aws:iam::111111111111:user/engineering/bob"
BODY = {"principal": {"arn": BOB}, "action": "ec2:DescribeInstances", "resource": "*",
        "context": {"aws:RequestedRegion": "us-east-1"}}


def rss_kib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def connect(addr):
    host, port = addr.rsplit(":", 1)
    return socket.create_connection((host, int(port)), timeout=5)


def quick_decision(server):
    t = time.monotonic()
    r = server.authorize(BODY)
    assert r.status_code == 200 and r.json()["decision"] == "allowed"
    return time.monotonic() - t


def test_slow_and_idle_clients_do_not_starve_others(tmp_path):
    server = start_server(tmp_path, "--request-timeout-ms", "2000")
    try:
        base_rss = rss_kib(server.proc.pid)
        socks = []
        # 300 idle connections on each API port, and 100 slow-header
        # clients that send one byte at a time.
        for addr in (server.addrs["http"], server.addrs["grpc"]):
            for _ in range(300):
                socks.append(connect(addr))
        slow = [connect(server.addrs["http"]) for _ in range(100)]
        for s in slow:
            s.sendall(b"POST /v1/authorize HTTP/1.1\r\nHost: x\r\n")
        stop = threading.Event()

        def dribble():
            while not stop.is_set():
                for s in slow:
                    try:
                        s.sendall(b"X")
                    except OSError:
                        pass
                time.sleep(0.2)

        t = threading.Thread(target=dribble)
        t.start()
        try:
            worst = max(quick_decision(server) for _ in range(50))
            assert worst < 1.0, f"a decision took {worst:.3f}s under hostile load"
        finally:
            stop.set()
            t.join()
        # A body that never completes is cut off by the request timeout.
        s = connect(server.addrs["http"])
        s.sendall(b"POST /v1/authorize HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 1000\r\n\r\n{")
        s.settimeout(10)
        reply = s.recv(4096)
        assert b"408" in reply.split(b"\r\n", 1)[0], reply[:200]
        for s in socks + slow:
            s.close()
        assert server.proc.poll() is None
        grown = rss_kib(server.proc.pid) - base_rss
        assert grown < 200 * 1024, f"RSS grew by {grown} KiB"
    finally:
        assert server.stop() == 0


def test_garbage_bytes_on_every_port(tmp_path):
    server = start_server(tmp_path)
    try:
        junk = [
            b"\x00" * 64,
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\xff" * 100,
            b"GET / HTTP/1.1\r\n" + b"X-A: b\r\n" * 500 + b"\r\n",
            b"\x16\x03\x01\x02\x00" + b"\x01" * 512,
            b"POST /v1/authorize HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
            b"POST /v1/authorize HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        ]
        for addr in (server.addrs["http"], server.addrs["grpc"], server.addrs["admin"]):
            for payload in junk:
                s = connect(addr)
                try:
                    s.sendall(payload)
                    s.settimeout(2)
                    try:
                        s.recv(4096)
                    except (socket.timeout, OSError):
                        pass
                finally:
                    s.close()
        assert server.proc.poll() is None
        quick_decision(server)
        too_many = {"X-H%d" % i: "v" for i in range(150)}
        r = requests.post(server.http + "/v1/authorize", json=BODY, headers=too_many, timeout=10)
        assert r.status_code == 431
    finally:
        assert server.stop() == 0
