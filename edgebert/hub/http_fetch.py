"""HTTP downloads of one file: redirects, retries, resume, verification.

``fetch``/``fetch_final`` write ``dest`` only after the whole object arrived and checked
(length, the storage service's MD5 header, an expected sha256). A transfer that broke off
is kept (``<dest>.partial`` with its validators in ``<dest>.partial.json``) and the next
call resumes it with an HTTP Range request.

What the real service does and how it is handled (each has a loopback test in
``tests/test_download_reliability.py``): 308 redirects (Python 3.10's urllib has no 308
handler), transfers cut off (chunked or short), 429/5xx answered with retries and backoff
(429 honours ``Retry-After``, capped), 403 explained per host, web pages served instead of
archives, Cloud Storage decompressive transcoding.
"""

from __future__ import annotations

import base64
import email.utils
import gzip
import hashlib
import http.client
import json
import os
import shutil
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from edgebert.errors import DownloadError

TFHUB_ROOT = "https://tfhub.dev"
CHUNK = 1 << 20
MAX_TRIES = 4
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
RETRY_AFTER_CAP_S = 60.0
_sleep = time.sleep  # tests record the delays instead of waiting


def resolve_url(url: str) -> str:
    """Applies ``$EDGEBERT_HUB_MIRROR`` (a mirror of tfhub.dev, e.g. an internal server).

    Args:
        url: an address; only those under ``TFHUB_ROOT`` are redirected to the mirror.

    Returns:
        The address to ask.
    """
    mirror = os.environ.get("EDGEBERT_HUB_MIRROR")
    if mirror and url.startswith(TFHUB_ROOT):
        return mirror.rstrip("/") + url[len(TFHUB_ROOT) :]
    return url


def retry_base_s() -> float:
    """First backoff delay, doubled per try: ``$EDGEBERT_RETRY_BASE_S`` or 1 s."""
    try:
        return max(0.0, float(os.environ.get("EDGEBERT_RETRY_BASE_S", "1")))
    except ValueError:
        return 1.0


class _Progress:
    """A one-line progress meter on stderr (no dependency, quiet when not a terminal)."""

    def __init__(self, label: str, total: int | None, done: int = 0):
        self.label, self.total, self.done = label, total, done
        self.tty = sys.stderr.isatty()
        self._last = 0.0

    def update(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        if now - self._last < 0.2:
            return
        self._last = now
        self._draw(end="\r" if self.tty else "\n")

    def _draw(self, end: str) -> None:
        mb = self.done / 1e6
        if self.total:
            pct = 100.0 * self.done / self.total
            msg = f"{self.label}: {mb:.1f}/{self.total / 1e6:.1f} MB ({pct:.0f}%)"
        else:
            msg = f"{self.label}: {mb:.1f} MB"
        if self.tty or end == "\n":
            print(msg, end=end, file=sys.stderr, flush=True)

    def close(self) -> None:
        self._draw(end="\n")


# --- HTTP ---------------------------------------------------------------------------------


class _Redirects(urllib.request.HTTPRedirectHandler):
    """Follows 308 as 307: Python 3.10's handler knows only 301/302/303/307 ("HTTP 308")."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return super().redirect_request(req, fp, 307 if code == 308 else code, msg, headers, newurl)

    http_error_308 = urllib.request.HTTPRedirectHandler.http_error_302


class _Retry(Exception):
    """A transient failure: try again after ``delay`` (None: backoff), or raise ``error``."""

    def __init__(self, error: DownloadError, delay: float | None = None):
        super().__init__(str(error))
        self.error, self.delay = error, delay


def _goog_md5(headers) -> bytes | None:
    # Google Cloud Storage (where Kaggle/TF Hub archives live) sends
    # "x-goog-hash: crc32c=..., md5=<base64>" for the whole stored object, ranged or not.
    for value in headers.get_all("x-goog-hash") or []:
        for part in value.split(","):
            key, _, b64 = part.strip().partition("=")
            if key == "md5":
                try:
                    return base64.b64decode(b64 + "=" * (-len(b64) % 4))
                except ValueError:
                    return None
    return None


def _retry_after(headers) -> float | None:
    """``Retry-After`` (seconds or an HTTP date) in seconds, capped; None when absent."""
    value = (headers.get("Retry-After") or "").strip() if headers else ""
    if not value:
        return None
    if value.isdigit():
        delay = float(value)
    else:
        try:
            delay = email.utils.parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError):
            return None
    return min(max(delay, 0.0), RETRY_AFTER_CAP_S)


def _forbidden_fix(url: str, manual: str | None) -> str:
    """What to do about a 403, by who answered it (the final URL's host)."""
    host = urllib.parse.urlsplit(url).hostname or ""
    by_hand = (
        f"download the archive from {manual} in a browser" if manual else "download the archive in a browser"
    ) + " and pass the .tar.gz as SOURCE"
    if "googleapis.com" in host or "googleusercontent.com" in host:
        return f"the signed storage link was refused or expired: run the command again for a fresh one, or {by_hand}"
    if "kaggle" in host:
        return f"Kaggle refused the request (the model may need its terms accepted while signed in): {by_hand}"
    return (
        f"{host} refuses some networks and clients (tensorflow/hub users report 403 from tfhub.dev): "
        f"{by_hand}, or set EDGEBERT_HUB_MIRROR to a reachable mirror"
    )


def _http_error(code: int, reason: str, url: str, manual: str | None, tries: int = 1) -> DownloadError:
    after = f" after {tries} tries" if tries > 1 else ""
    problem = f"download of {url} failed{after}: HTTP {code} {reason}"
    if code == 403:
        return DownloadError(problem, _forbidden_fix(url, manual))
    if code == 429:
        return DownloadError(
            problem, "the server is rate-limiting this address: wait a few minutes and run the command again"
        )
    if code >= 500:
        return DownloadError(
            problem,
            "the service is failing for now: run the command again later, "
            "or set EDGEBERT_HUB_MIRROR to a reachable mirror",
        )
    return DownloadError(problem, "check the handle with `edgebert models`")


def _open(req: urllib.request.Request, timeout: float, manual: str | None):
    """Opens ``req`` following redirects (308 too); transient statuses raise ``_Retry``."""
    try:
        return urllib.request.build_opener(_Redirects).open(req, timeout=timeout)
    except urllib.error.HTTPError as e:
        final = e.geturl() or req.full_url  # the URL after redirects: who actually refused
        e.close()
        if e.code in RETRY_STATUSES:
            last = _http_error(e.code, e.reason, final, manual, MAX_TRIES)
            raise _Retry(last, _retry_after(e.headers)) from None
        raise _http_error(e.code, e.reason, final, manual) from None
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise DownloadError(
            f"cannot reach {req.full_url} ({reason})",
            "you appear to be offline: download that address elsewhere, unpack it, and pass "
            "the directory as SOURCE, or set EDGEBERT_HUB_MIRROR to a reachable mirror",
        ) from None


def looks_like_web_page(head: bytes) -> bool:
    """Whether a file's first bytes are an HTML page.

    Args:
        head: the first bytes of the body or file (leading whitespace allowed).

    Returns:
        True when they start an HTML document (``<!doctype html`` or ``<html``).
    """
    return head.lstrip().lower().startswith((b"<!doctype html", b"<html"))


def _refuse_web_page(headers, first: bytes, url: str) -> None:
    """Raises when the server sent an HTML page (a login, consent or error page)."""
    ctype = headers.get_content_type() if headers.get("Content-Type") else "none"
    head = first.lstrip()[:64]
    if ctype in ("text/html", "application/xhtml+xml") or looks_like_web_page(head):
        raise DownloadError(
            f"{url} sent a web page (Content-Type {ctype}, starting {head[:32]!r}), not a model archive",
            "the address needs a browser (a login, a consent or an error page): open it there, download "
            "the .tar.gz and run `edgebert export path/to/model.tar.gz`",
        )


# --- resumable download -------------------------------------------------------------------


class _Partial:
    """A download in progress: ``<dest>.partial`` and its validators in ``<dest>.partial.json``."""

    def __init__(self, dest: Path):
        self.path = dest.with_name(dest.name + ".partial")
        self.meta_path = dest.with_name(dest.name + ".partial.json")

    def meta(self) -> dict:
        try:
            return json.loads(self.meta_path.read_text())
        except (OSError, ValueError):
            return {}

    def resumable_size(self, url: str) -> int:
        """Bytes kept for ``url`` that the server can be asked to continue (0: start over)."""
        meta = self.meta()
        size = self.path.stat().st_size if self.path.exists() else 0
        # Without a validator a changed object would be spliced onto the old bytes.
        if size and meta.get("url") == url and (meta.get("etag") or meta.get("last_modified")):
            return size
        self.drop()
        return 0

    def save(self, meta: dict) -> None:
        self.meta_path.write_text(json.dumps(meta))

    def drop(self) -> None:
        self.path.unlink(missing_ok=True)
        self.meta_path.unlink(missing_ok=True)


def _content_range(headers) -> tuple[int, int | None] | None:
    """(first byte, total) of a 206's ``Content-Range: bytes a-b/total``."""
    value = headers.get("Content-Range", "")
    try:
        unit, _, spec = value.partition(" ")
        span, _, total = spec.partition("/")
        return int(span.split("-")[0]), (int(total) if total.isdigit() else None)
    except ValueError:
        return None


def _transcoded(headers) -> bool:
    # Cloud Storage stores some objects gzip-encoded and, unless the client accepts gzip,
    # serves them decompressed ("decompressive transcoding"): its MD5 is of the stored bytes.
    stored = (headers.get("x-goog-stored-content-encoding") or "identity").lower()
    return stored != "identity" and (headers.get("Content-Encoding") or "identity").lower() != stored


def _request(url: str, have: int, meta: dict) -> urllib.request.Request:
    headers = {"User-Agent": "edgebert"}
    if have:
        headers["Range"] = f"bytes={have}-"
        # If-Range: the server sends the whole object (200) if it changed since the first part.
        headers["If-Range"] = meta.get("etag") or meta["last_modified"]
    return urllib.request.Request(url, headers=headers)


def _attempt(url: str, part: _Partial, label: str, timeout: float, manual: str | None) -> tuple[str, dict]:
    """One request: continues or starts ``part``; returns (final URL, what the server said)."""
    have = part.resumable_size(url)
    meta = part.meta() if have else {}
    try:
        resp = _open(_request(url, have, meta), timeout, manual)
    except DownloadError as e:
        if have and "HTTP 416" in e.problem:  # the kept part no longer fits the object
            part.drop()
            raise _Retry(e, 0.0) from None
        raise
    with resp:
        final = resp.geturl()
        got = _content_range(resp.headers) if resp.status == 206 else None
        if resp.status == 206 and not (got and got[0] == have and have):
            part.drop()  # a range that was not asked for cannot be appended: start over
            raise _Retry(
                DownloadError(
                    f"{final} answered a byte range it was not asked for ({resp.headers.get('Content-Range')})",
                    "run the command again",
                ),
                0.0,
            )
        if not got:
            have = 0  # the server sent the whole object (no Range support, or it changed)
        total = got[1] if got else _length(resp.headers)
        meta = _server_meta(url, resp.headers, total, meta if have else {})
        part.save(meta)
        bar = _Progress(label, total, have)
        _receive(resp, part, have, bar, final)
        bar.close()
    size = part.path.stat().st_size
    if total is not None and size != total:
        raise _Retry(
            DownloadError(
                f"download of {final} is truncated: got {size} of {total} bytes",
                "run the command again: it resumes from the bytes kept",
            )
        )
    return final, meta


def _length(headers) -> int | None:
    value = headers.get("Content-Length")
    return int(value) if value and value.isdigit() else None


def _server_meta(url: str, headers, total: int | None, old: dict) -> dict:
    """What identifies and verifies the object; an earlier part's values fill the gaps."""
    md5 = _goog_md5(headers)
    return {
        "url": url,
        "etag": headers.get("ETag") or old.get("etag"),
        "last_modified": headers.get("Last-Modified") or old.get("last_modified"),
        "total": total,
        "md5": base64.b64encode(md5).decode() if md5 else old.get("md5"),
        "transcoded": _transcoded(headers) or old.get("transcoded", False),
        "content_encoding": (headers.get("Content-Encoding") or old.get("content_encoding") or "identity").lower(),
    }


def _receive(resp, part: _Partial, have: int, bar: _Progress, final: str) -> None:
    """Appends the body to ``part``; a broken transfer raises ``_Retry`` (the bytes stay)."""
    with open(part.path, "ab" if have else "wb") as out:
        first = not have  # a fresh body is checked for being a web page before it is kept
        while True:
            broke = None
            try:
                chunk = resp.read(CHUNK)
            except (OSError, ValueError, http.client.HTTPException) as e:
                # IncompleteRead (a chunked body cut off) is an HTTPException, not an OSError;
                # it carries what arrived in this read, which the resume must not ask for again.
                broke, chunk = e, getattr(e, "partial", b"") if isinstance(getattr(e, "partial", None), bytes) else b""
            if first:
                _refuse_web_page(resp.headers, chunk, final)
                first = False
            out.write(chunk)
            bar.update(len(chunk))
            if broke is not None:
                raise _Retry(
                    DownloadError(
                        f"download of {final} broke off after {out.tell()} bytes ({type(broke).__name__})",
                        "run the command again: it resumes from the bytes kept",
                    )
                ) from None
            if not chunk:
                return


def file_hashes(path: Path) -> tuple[bytes, str]:
    """Hashes a file from disk, so the bytes of resumed parts count too.

    Args:
        path: the file.

    Returns:
        Its MD5 digest and its sha256 as hex.
    """
    md5, sha = hashlib.md5(), hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            md5.update(chunk)
            sha.update(chunk)
    return md5.digest(), sha.hexdigest()


def _verify(path: Path, meta: dict, sha256: str | None, final: str) -> None:
    md5, sha = file_hashes(path)
    if meta.get("transcoded"):
        print(
            f"note: {final} was served decompressed (stored gzip-encoded); the storage MD5 is of the "
            "stored bytes, so the archive is checked by reading it whole instead",
            file=sys.stderr,
        )
    elif meta.get("md5") and md5 != base64.b64decode(meta["md5"]):
        raise DownloadError(
            f"download of {final} does not match the server's MD5", "the file is corrupt; run the command again"
        )
    if meta.get("content_encoding") == "gzip":
        # Sent gzip-encoded (the stored bytes, which the MD5 covers): the archive is inside.
        _gunzip_in_place(path, final)
        sha = file_hashes(path)[1]
    if sha256 and sha != sha256.lower():
        raise DownloadError(
            f"download of {final} has sha256 {sha}, expected {sha256}",
            "the archive differs from the catalog's; do not use it",
        )


def _gunzip_in_place(path: Path, final: str) -> None:
    tmp = path.with_name(path.name + ".gunzip")
    try:
        with gzip.open(path, "rb") as src, open(tmp, "wb") as out:
            shutil.copyfileobj(src, out, CHUNK)
    except (OSError, EOFError) as e:
        tmp.unlink(missing_ok=True)
        raise DownloadError(
            f"download of {final} is gzip-encoded but does not decode ({e})", "run the command again"
        ) from None
    os.replace(tmp, path)


def fetch(url: str, dest: Path, **options) -> Path:
    """Downloads ``url`` to ``dest``; the keyword options and errors are ``fetch_final``'s.

    Returns:
        ``dest``.
    """
    return fetch_final(url, dest, **options)[0]


def fetch_final(
    url: str,
    dest: Path,
    *,
    sha256: str | None = None,
    label: str = "download",
    timeout: float = 30.0,
    manual: str | None = None,
) -> tuple[Path, str]:
    """Downloads ``url`` to ``dest`` (resuming a kept part), verifies it, then renames it.

    Args:
        url: the address (``$EDGEBERT_HUB_MIRROR`` applies to tfhub.dev ones).
        dest: the file to create; ``<dest>.partial`` holds the bytes until verified.
        sha256: the expected digest, where the catalog knows it.
        label: the progress line's label.
        timeout: seconds per socket operation.
        manual: a page where the archive can be fetched by hand, named in errors.

    Returns:
        ``dest`` and the final URL after redirects.

    Raises:
        DownloadError: one line naming the final URL and the fix. A transfer that broke
            off leaves its part for the next run; any other failure removes it.
    """
    real_url = resolve_url(url)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = _Partial(dest)
    for attempt in range(MAX_TRIES):
        try:
            final, meta = _attempt(real_url, part, label, timeout, manual)
            break
        except _Retry as r:
            if attempt + 1 == MAX_TRIES:
                raise r.error from None
            _sleep(r.delay if r.delay is not None else retry_base_s() * 2**attempt)
        except BaseException:
            part.drop()  # not a break-off: these bytes are no use to a resume
            raise
    try:
        _verify(part.path, meta, sha256, final)
    except BaseException:
        part.drop()
        raise
    os.replace(part.path, dest)
    part.meta_path.unlink(missing_ok=True)
    return dest, final
