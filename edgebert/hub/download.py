"""Downloads TF Hub / Kaggle model archives into the edgebert cache, verified and atomic.

A cache entry (``models/<name>``) is a directory that appears by one ``rename`` after the
archive was fully downloaded and checked (``edgebert.hub.http_fetch``), safely extracted and
found to hold model files (``edgebert.hub.archive``). Anything that fails on the way is
removed, so an entry that exists is complete. The one thing kept on failure is a transfer
that broke off (``downloads/<name>.tar.gz.partial`` with its validators), so the next run
resumes it; a lock file beside it makes concurrent runs download once.
"""

from __future__ import annotations

import contextlib
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

from edgebert.cache import cache_dir
from edgebert.hub.archive import extract_tar, is_model_dir, unpack_by_hand
from edgebert.hub.http_fetch import fetch_final, file_hashes

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; concurrent runs may download twice
    fcntl = None  # type: ignore[assignment]


def entry_dir(handle: str) -> Path:
    """The cache entry of a catalog handle: ``models/<handle with / as __>``.

    Args:
        handle: a catalog handle, e.g. ``tensorflow/bert_en_uncased_L-12_H-768_A-12/4``.

    Returns:
        The entry's directory (it may not exist yet).
    """
    return cache_dir() / "models" / handle.replace("/", "__")


def downloads_dir() -> Path:
    """Where archives, resumable partial downloads and lock files live (not ``models/``).

    Returns:
        The directory, created if missing.
    """
    d = cache_dir() / "downloads"
    d.mkdir(parents=True, exist_ok=True)
    return d


@contextlib.contextmanager
def _locked(name: str) -> Iterator[None]:
    """Holds ``downloads/<name>.lock`` so concurrent runs fetch one entry once."""
    with open(downloads_dir() / f"{name}.lock", "a+") as f:
        if fcntl is not None:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                print(f"waiting for another edgebert fetching {name}", file=sys.stderr, flush=True)
                fcntl.flock(f, fcntl.LOCK_EX)
        yield  # closing the file releases the lock, also when the process dies


def _replace_bad_entry(final: Path) -> None:
    # Older versions cached archives rooted at a folder as they were; such an entry would
    # otherwise be reused, and refused, forever.
    if final.exists() and not is_model_dir(final):
        print(f"note: removing the cache entry {final}, which holds no model files", file=sys.stderr)
        shutil.rmtree(final, ignore_errors=True)


def _fill_entry(final: Path, make: Callable[[Path], object]) -> Path:
    """Returns the cache entry ``final``, calling ``make(final)`` to create it once.

    Concurrent runs queue on the entry's lock; the one that comes second finds the entry
    made. An entry without model files (from older versions) is removed and made anew.
    """
    if is_model_dir(final):
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    with _locked(final.name):
        if is_model_dir(final):  # another process finished it while this one waited
            return final
        _replace_bad_entry(final)
        make(final)
    return final


def download_model(handle: str, url: str, *, sha256: str | None = None, manual: str | None = None) -> Path:
    """Returns the cache directory of ``handle``, downloading and unpacking it once.

    Args:
        handle: the catalog handle, which names the cache entry.
        url: the archive's address (``$EDGEBERT_HUB_MIRROR`` applies to tfhub.dev ones).
        sha256: the archive's expected digest, where the catalog knows it.
        manual: a page where the archive can be fetched by hand, named in errors.

    Returns:
        The entry's directory, holding the model files.

    Raises:
        DownloadError: one line naming the final URL and the fix; no entry is left.
    """

    def make(final: Path) -> None:
        archive = downloads_dir() / (final.name + ".tar.gz")
        try:
            _, final_url = fetch_final(url, archive, sha256=sha256, label=f"downloading {handle}", manual=manual)
            extract_tar(archive, final, origin=final_url)
        finally:
            archive.unlink(missing_ok=True)

    return _fill_entry(entry_dir(handle), make)


def unpack_archive(path: Path) -> Path:
    """Unpacks an archive downloaded by hand into the cache, keyed by its sha256; reused after.

    Args:
        path: the ``.tar.gz``/``.tgz``/``.tar`` given as SOURCE.

    Returns:
        The entry's directory, ``models/archive__<sha256>``.

    Raises:
        DownloadError: the file is a saved web page, corrupt, unsafe or holds no model.
    """
    sha = file_hashes(path)[1]
    return _fill_entry(cache_dir() / "models" / f"archive__{sha}", lambda final: unpack_by_hand(path, final))
