"""A stub EC2 backend that refuses every call: records each request as one
JSON line (method, path, action, params) in the file given as its only
argument, as backend.py does, and answers 503 with EC2's XML
`Unavailable` error. Stands for a backend that fails after iamgate allowed
the call. Prints {"port": N} on stdout once it listens on 127.0.0.1."""

import json
import sys
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

LOCK = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _handle(self):
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        params = dict(parse_qsl(urlsplit(self.path).query, keep_blank_values=True))
        if body:
            params.update(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        record = {"method": self.command, "path": self.path,
                  "action": params.get("Action", ""), "params": params}
        with LOCK, open(self.server.record_path, "a") as f:
            f.write(json.dumps(record) + "\n")
        out = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            "<Response><Errors><Error><Code>Unavailable</Code>"
            "<Message>The service is unavailable. Please try again shortly.</Message>"
            f"</Error></Errors><RequestID>{uuid.uuid4()}</RequestID></Response>"
        ).encode()
        self.send_response(503)
        self.send_header("content-type", "text/xml;charset=UTF-8")
        self.send_header("content-length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    do_GET = do_POST = _handle

    def log_message(self, *args):
        pass


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.record_path = sys.argv[1]
    print(json.dumps({"port": server.server_address[1]}), flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
