"""Helpers for end-to-end tests that use the authenticated control listener
(`--control-listen`): inventory writes, reloads and message decoding are
served only there, behind a bearer token (`--control-token-file`)."""

import os
import secrets
import time

import requests

from conftest import start_server


def write_token(tmp_path, token=None):
    """A token file readable by this user only; returns (path, token)."""
    token = token or "tok-" + secrets.token_hex(16)
    path = tmp_path / f"control-{time.monotonic_ns()}.token"
    path.write_text(token + "\n")
    os.chmod(path, 0o600)
    return path, token


def start_with_control(tmp_path, *args, token=None, **kw):
    """`start_server` with a control listener on an ephemeral port and a
    token (fresh unless given). The server gets `control` (its base URL),
    `token`, `token_file`, `auth` (the headers that authenticate) and
    `grpc_auth` (the same as gRPC metadata)."""
    token_file, token = write_token(tmp_path, token)
    server = start_server(tmp_path, "--control-listen", "127.0.0.1:0",
                          "--control-token-file", str(token_file), *args, **kw)
    server.control = "http://" + server.addrs["control"]
    server.token = token
    server.token_file = token_file
    server.auth = {"authorization": f"Bearer {token}"}
    server.grpc_auth = (("authorization", f"Bearer {token}"),)
    return server


def control_post(server, path, **kw):
    """An authenticated POST to the control listener."""
    headers = {**server.auth, **kw.pop("headers", {})}
    return requests.post(server.control + path, headers=headers, timeout=kw.pop("timeout", 30), **kw)


def control_get(server, path, **kw):
    """An authenticated GET from the control listener."""
    headers = {**server.auth, **kw.pop("headers", {})}
    return requests.get(server.control + path, headers=headers, timeout=kw.pop("timeout", 10), **kw)
