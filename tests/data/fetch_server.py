"""A local HTTP server on 127.0.0.1 (port 0, a thread) serving fixture archives, with HTTP Range,
and a switch to break a transfer: send the headers and half the body, then close."""

from __future__ import annotations

import re
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FileServer:
    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = dict(files)
        self.requests: list[tuple[str, str | None]] = []  # (path, Range header)
        self.break_next: set[str] = set()  # names whose next transfer breaks half-way
        self.ranges = True  # False: Range is ignored (a 200 with the whole file)
        self.server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def handler(self):
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # quiet
                pass

            def do_GET(self) -> None:
                name = self.path.lstrip("/")
                owner.requests.append((name, self.headers.get("Range")))
                if name not in owner.files:
                    self.send_error(404)
                    return
                data, start = owner.files[name], 0
                match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
                if match and owner.ranges:
                    start = int(match.group(1))
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start:]
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if name in owner.break_next:
                    owner.break_next.discard(name)
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

        return Handler


@contextmanager
def serving(files: dict[str, bytes]):
    owner = FileServer(files)
    owner.server = ThreadingHTTPServer(("127.0.0.1", 0), owner.handler())
    thread = threading.Thread(target=owner.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield owner
    finally:
        owner.server.shutdown()
        owner.server.server_close()
        thread.join(timeout=10)
