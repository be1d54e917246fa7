"""Downloads TF Hub / Kaggle model archives into the edgebert cache, verified and atomic.

A cache entry is a directory that appears by one ``rename`` after the archive was fully
downloaded, checked (length, the storage service's MD5 header, the catalog's sha256 where
known, a complete read of the tar stream) and safely extracted. Anything that fails on the
way is removed, so an entry that exists is complete.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from edgebert.errors import DownloadError

TFHUB_ROOT = "https://tfhub.dev"
CHUNK = 1 << 20


def cache_dir() -> Path:
    """``$EDGEBERT_CACHE`` or ``~/.cache/edgebert``."""
    root = os.environ.get("EDGEBERT_CACHE") or os.path.join(Path.home(), ".cache", "edgebert")
    return Path(root)


def resolve_url(url: str) -> str:
    """Applies ``$EDGEBERT_HUB_MIRROR`` (a mirror of tfhub.dev, e.g. an internal server)."""
    mirror = os.environ.get("EDGEBERT_HUB_MIRROR")
    if mirror and url.startswith(TFHUB_ROOT):
        return mirror.rstrip("/") + url[len(TFHUB_ROOT):]
    return url


def entry_dir(handle: str) -> Path:
    return cache_dir() / "models" / handle.replace("/", "__")


class _Progress:
    """A one-line progress meter on stderr (no dependency, quiet when not a terminal)."""

    def __init__(self, label: str, total: int | None):
        self.label, self.total, self.done = label, total, 0
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


def _goog_md5(headers) -> bytes | None:
    # Google Cloud Storage (where Kaggle/TF Hub archives live) sends
    # "x-goog-hash: crc32c=..., md5=<base64>"; verify it when present.
    for value in headers.get_all("x-goog-hash") or []:
        for part in value.split(","):
            key, _, b64 = part.strip().partition("=")
            if key == "md5":
                try:
                    return base64.b64decode(b64 + "=" * (-len(b64) % 4))
                except ValueError:
                    return None
    return None


def fetch(url: str, dest: Path, *, sha256: str | None = None, label: str = "download",
          timeout: float = 30.0) -> Path:
    """Downloads ``url`` to ``dest`` via a temp file and a rename; verifies what it can."""
    real_url = resolve_url(url)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=".part-", suffix=dest.suffix)
    try:
        req = urllib.request.Request(real_url, headers={"User-Agent": "edgebert"})
        try:
            resp = urllib.request.urlopen(req, timeout=timeout)
        except urllib.error.HTTPError as e:
            raise DownloadError(f"download of {real_url} failed: HTTP {e.code} {e.reason}",
                                "check the handle with `edgebert models`") from None
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", e)
            raise DownloadError(
                f"cannot reach {real_url} ({reason})",
                "you appear to be offline: download that address elsewhere, unpack it, and pass "
                "the directory as SOURCE, or set EDGEBERT_HUB_MIRROR to a reachable mirror",
            ) from None
        with resp, os.fdopen(fd, "wb") as out:
            total = resp.headers.get("Content-Length")
            total_n = int(total) if total and total.isdigit() else None
            md5_expected = _goog_md5(resp.headers)
            md5, sha = hashlib.md5(), hashlib.sha256()
            bar = _Progress(label, total_n)
            while True:
                try:
                    chunk = resp.read(CHUNK)
                except (OSError, ValueError) as e:
                    raise DownloadError(f"download of {real_url} broke off ({e})",
                                        "run the command again") from None
                if not chunk:
                    break
                out.write(chunk)
                md5.update(chunk)
                sha.update(chunk)
                bar.update(len(chunk))
            bar.close()
        if total_n is not None and bar.done != total_n:
            raise DownloadError(
                f"download of {real_url} is truncated: got {bar.done} of {total_n} bytes",
                "run the command again")
        if md5_expected is not None and md5.digest() != md5_expected:
            raise DownloadError(f"download of {real_url} does not match the server's MD5",
                                "the file is corrupt; run the command again")
        if sha256 and sha.hexdigest() != sha256.lower():
            raise DownloadError(
                f"download of {real_url} has sha256 {sha.hexdigest()}, expected {sha256}",
                "the archive differs from the catalog's; do not use it")
        os.replace(tmp, dest)
        return dest
    except BaseException:
        try:
            os.close(fd)
        except OSError:
            pass
        Path(tmp).unlink(missing_ok=True)
        raise


def extract_tar(archive: Path, dest: Path) -> Path:
    """Extracts a ``.tar.gz`` with tarfile's ``data`` filter into ``dest``, atomically."""
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=".extract-"))
    try:
        try:
            with tarfile.open(archive, "r:*") as tar:
                tar.extractall(tmp, filter="data")
        except tarfile.FilterError as e:
            raise DownloadError(f"archive {archive.name} is unsafe: {e}",
                                "refusing to unpack a member that escapes the cache") from None
        except (tarfile.TarError, EOFError, OSError, ValueError) as e:
            raise DownloadError(f"archive {archive.name} is corrupt or truncated ({e})",
                                "run the command again to download it anew") from None
        os.replace(tmp, dest)
        return dest
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def download_model(handle: str, url: str, *, sha256: str | None = None) -> Path:
    """Returns the cache directory of ``handle``, downloading and unpacking it once."""
    final = entry_dir(handle)
    if final.is_dir():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    archive = final.parent / (final.name + ".tar.gz")
    try:
        fetch(url, archive, sha256=sha256, label=f"downloading {handle}")
        extract_tar(archive, final)
    finally:
        archive.unlink(missing_ok=True)
    return final
