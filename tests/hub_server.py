"""A loopback HTTP server that plays TF Hub / Kaggle / Cloud Storage for download tests."""

from __future__ import annotations

import base64
import hashlib
import http.server
import io
import tarfile
import threading
from pathlib import Path


def tar_gz_of_dir(path: Path) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for f in sorted(path.rglob("*")):
            tar.add(f, arcname=str(f.relative_to(path)), recursive=False)
    return buf.getvalue()


def escaping_tar_gz() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        data = b"owned"
        info = tarfile.TarInfo("../../escaped.txt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


class HubServer:
    """Serves ``/<handle>?tf-hub-format=compressed`` as TF Hub does: a redirect to storage.

    ``mode`` picks the behaviour: ``ok``, ``truncated`` (Content-Length larger than the
    body), ``bad_md5`` (x-goog-hash that does not match), ``escape`` (a member that
    escapes the target), ``corrupt`` (not a gzip), ``missing`` (404).
    """

    def __init__(self, archive: bytes):
        self.archive = archive
        self.mode = "ok"
        self.hits: list[str] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                server.hits.append(self.path)
                if not self.path.startswith("/storage/"):
                    if server.mode == "missing":
                        self.send_error(404)
                        return
                    self.send_response(302)
                    self.send_header("Location", "/storage/model.tar.gz")
                    self.end_headers()
                    return
                body = {"escape": escaping_tar_gz(), "corrupt": b"this is not a gzip archive" * 100}.get(
                    server.mode, server.archive)
                md5 = hashlib.md5(body if server.mode != "bad_md5" else b"other").digest()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-gzip")
                self.send_header("x-goog-hash", f"crc32c=AAAAAA==, md5={base64.b64encode(md5).decode()}")
                if server.mode == "truncated":
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
