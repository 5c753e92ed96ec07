"""A stub EC2 Query API backend for tests/e2e/test_ec2_envoy.py: decodes
the `Action` from the query string or the form body, answers 200 with a
tiny EC2-style XML document (`<{Action}Response>` with a requestId), and
appends one JSON line per request (method, path, headers, body, action) to
the file given as its only argument. Prints {"port": N} on stdout once it
listens on 127.0.0.1 (ephemeral port)."""

import json
import sys
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

LOCK = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes: without TCP_NODELAY the
    # body waits for Envoy's delayed ACK (about 40 ms per call).
    disable_nagle_algorithm = True

    def _body(self):
        """The body by content-length, or chunked (as Envoy forwards a body
        that came without a length)."""
        if "chunked" in self.headers.get("transfer-encoding", "").lower():
            body = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return body
                body += self.rfile.read(size)
                self.rfile.readline()
        length = int(self.headers.get("content-length") or 0)
        return self.rfile.read(length) if length else b""

    def _handle(self):
        body = self._body()
        params = dict(parse_qsl(urlsplit(self.path).query, keep_blank_values=True))
        if body:
            params.update(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        action = params.get("Action", "")
        record = {
            "method": self.command,
            "path": self.path,
            "headers": {k.lower(): v for k, v in self.headers.items()},
            "body": body.decode("utf-8", "replace"),
            "action": action,
            "params": params,
        }
        with LOCK, open(self.server.record_path, "a") as f:
            f.write(json.dumps(record) + "\n")
        out = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f'<{action}Response xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">'
            f"<requestId>{uuid.uuid4()}</requestId><return>true</return>"
            f"</{action}Response>"
        ).encode()
        self.send_response(200)
        self.send_header("content-type", "text/xml;charset=UTF-8")
        self.send_header("content-length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

    def log_message(self, *args):
        pass


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.record_path = sys.argv[1]
    print(json.dumps({"port": server.server_address[1]}), flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
