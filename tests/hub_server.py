"""A loopback HTTP server that plays TF Hub / Kaggle / Cloud Storage for download tests."""

from __future__ import annotations

import base64
import gzip
import hashlib
import http.server
import io
import tarfile
import threading
import time
from pathlib import Path


def tar_gz_of_dir(path: Path, root: str = "") -> bytes:
    """``path`` as a .tar.gz rooted at ``./`` (TF Hub's layout) or at the folder ``root``."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for f in sorted(path.rglob("*")):
            rel = str(f.relative_to(path))
            tar.add(f, arcname=f"{root}/{rel}" if root else rel, recursive=False)
    return buf.getvalue()


def tar_gz_of(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def escaping_tar_gz() -> bytes:
    return tar_gz_of({"../../escaped.txt": b"owned"})


def symlink_escaping_tar_gz() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info = tarfile.TarInfo("saved_model.pb")
        info.type, info.linkname = tarfile.SYMTYPE, "../../../etc/passwd"
        tar.addfile(info)
    return buf.getvalue()


WEB_PAGE = b"<!DOCTYPE html>\n<html><head><title>Sign in - Kaggle</title></head><body>Sign in</body></html>\n"


class HubServer:
    """Serves ``/<handle>?tf-hub-format=compressed`` as TF Hub does: a redirect to storage.

    ``mode`` picks the behaviour: ``ok``; ``truncated`` (Content-Length larger than the
    body); ``bad_md5`` (x-goog-hash that does not match); ``escape`` (a member that escapes
    the target); ``corrupt`` (not a gzip); ``missing`` (404); ``redirect_308``; ``chunked`` (chunked
    transfer, no length); ``chunked_cut`` (every chunked answer cut off half-way); ``no_hash`` (no x-goog-hash, no length); ``html`` (a
    sign-in page as text/html); ``html_octet`` (the same page labelled
    application/octet-stream); ``transcoded`` (Cloud Storage decompressive transcoding: the
    stored object is gzip-encoded, served decompressed, x-goog-hash of the stored bytes);
    ``gzip_encoded`` (the stored bytes sent with Content-Encoding: gzip).

    ``answers`` are (status, headers) given to storage requests before the normal one (403
    then 200, 429 with Retry-After, 503 then 200). ``cut_first`` cuts the first storage body
    after that many bytes. Range requests are answered with 206 (ETag = body MD5; an
    ``If-Range`` that does not match gets the whole body). ``hits`` lists request paths,
    ``storage_headers`` the headers of each storage request. ``chunk_delay_s`` slows the body.
    """

    def __init__(self, archive: bytes):
        self.archive = archive
        self.mode = "ok"
        self.hits: list[str] = []
        self.storage_headers: list[dict[str, str]] = []
        self.answers: list[tuple[int, dict[str, str]]] = []
        self.cut_first: int | None = None
        self.chunk_delay_s = 0.0
        self.etag_salt = ""
        self.lock = threading.Lock()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                with server.lock:
                    server.hits.append(self.path)
                if not self.path.startswith("/storage/"):
                    self._hub()
                    return
                with server.lock:
                    server.storage_headers.append(dict(self.headers.items()))
                    answer = server.answers.pop(0) if server.answers else None
                    cut = server.cut_first
                    server.cut_first = None
                if answer:
                    self.send_response(answer[0])
                    for k, v in answer[1].items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self._storage(cut)

            def _hub(self):
                if server.mode == "missing":
                    self.send_error(404)
                    return
                self.send_response(308 if server.mode == "redirect_308" else 302)
                self.send_header("Location", "/storage/model.tar.gz")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def _storage(self, cut: int | None):
                mode = server.mode
                body = {
                    "escape": escaping_tar_gz(),
                    "corrupt": b"this is not a gzip archive" * 100,
                    "html": WEB_PAGE,
                    "html_octet": WEB_PAGE,
                }.get(mode, server.archive)
                stored = body
                if mode == "transcoded":  # stored gzip-encoded, served decompressed (the archive)
                    stored = gzip.compress(body)
                elif mode == "gzip_encoded":
                    stored = body = gzip.compress(body)
                md5 = hashlib.md5(stored if mode != "bad_md5" else b"other")
                etag = f'"{hashlib.md5(stored).hexdigest()}{server.etag_salt}"'
                start = self._range_start(etag, mode)
                self.send_response(206 if start else 200)
                self.send_header("Content-Type", "text/html; charset=utf-8" if mode == "html" else "application/x-gzip")
                if mode != "no_hash":
                    self.send_header("x-goog-hash", f"crc32c=AAAAAA==, md5={base64.b64encode(md5.digest()).decode()}")
                if mode == "transcoded":
                    self.send_header("x-goog-stored-content-encoding", "gzip")
                if mode == "gzip_encoded":
                    self.send_header("Content-Encoding", "gzip")
                    self.send_header("x-goog-stored-content-encoding", "gzip")
                if mode not in ("transcoded",):
                    self.send_header("ETag", etag)
                    self.send_header("Accept-Ranges", "bytes")
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                data = body[start:]
                if mode == "truncated" or mode == "chunked_cut":
                    cut = len(data) // 2  # every answer sends half of what it owes
                sent = data if cut is None else data[:cut]
                if mode in ("chunked", "chunked_cut", "transcoded"):
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    self._chunked(sent, complete=cut is None)
                    return
                if mode != "no_hash":
                    self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self._write(sent)
                self.close_connection = True

            def _range_start(self, etag: str, mode: str) -> int:
                spec = self.headers.get("Range", "")
                if mode == "transcoded" or not spec.startswith("bytes="):
                    return 0  # Cloud Storage ignores Range on transcoded objects
                if_range = self.headers.get("If-Range")
                if if_range and if_range != etag:
                    return 0
                return int(spec[len("bytes=") :].split("-")[0])

            def _write(self, data: bytes) -> None:
                step = max(1, len(data) // 8)
                for i in range(0, len(data), step):
                    self.wfile.write(data[i : i + step])
                    self.wfile.flush()
                    if server.chunk_delay_s:
                        time.sleep(server.chunk_delay_s)

            def _chunked(self, data: bytes, complete: bool) -> None:
                step = max(1, len(data) // 4)
                for i in range(0, len(data), step):
                    piece = data[i : i + step]
                    self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
                if complete:
                    self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()
                self.close_connection = True

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def storage_hits(self) -> int:
        return sum(p.startswith("/storage/") for p in self.hits)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
