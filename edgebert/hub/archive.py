"""Model archives: safe tar extraction and recognising the model directory inside.

Extraction refuses members that would escape the target (tarfile's ``data`` filter where
Python has it, the same checks by hand where it does not), happens in a temporary folder
and appears by one ``rename``; an archive rooted at a single folder is unwrapped.
"""

from __future__ import annotations

import copy
import os
import shutil
import tarfile
import tempfile
from pathlib import Path, PurePosixPath

from edgebert.errors import DownloadError
from edgebert.hub.http_fetch import looks_like_web_page

# Files by which an unpacked directory is recognised as a model (any reader's marker).
MODEL_MARKERS = ("saved_model.pb", "saved_model.pbtxt", "tfhub_module.pb", "bert_config.json", "config.json")
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")


def _unsafe(archive: str, why: str) -> DownloadError:
    return DownloadError(f"archive {archive} is unsafe: {why}", "refusing to unpack a member that escapes the cache")


def _checked_members(tar: tarfile.TarFile, archive: str) -> list[tarfile.TarInfo]:
    """The ``data`` filter's refusals, by hand, for Pythons without PEP 706 (3.10.0-3.10.11).

    Stricter on links: no link may climb (``..``) at all, so none can escape through another.
    """
    out = []
    for m in tar.getmembers():
        parts = PurePosixPath(m.name).parts
        if m.name.startswith(("/", "\\")) or ".." in parts or ":" in (parts[0] if parts else ""):
            raise _unsafe(archive, f"member {m.name!r} would be written outside the target")
        if m.issym() or m.islnk():
            if m.linkname.startswith("/") or ".." in PurePosixPath(m.linkname).parts:
                raise _unsafe(archive, f"link {m.name!r} -> {m.linkname!r} points outside the target")
        elif not (m.isfile() or m.isdir()):
            raise _unsafe(archive, f"member {m.name!r} is a device or a pipe")
        m = copy.copy(m)
        m.mode &= 0o755  # no setuid/setgid/sticky, no group/other write, as the data filter
        if hasattr(os, "getuid"):  # as root, extractall would chown to the archive's owners
            m.uid, m.gid, m.uname, m.gname = os.getuid(), os.getgid(), "", ""
        out.append(m)
    return out


def _extract_all(tar: tarfile.TarFile, into: Path, archive: str) -> None:
    if hasattr(tarfile, "data_filter"):
        try:
            tar.extractall(into, filter="data")
        except tarfile.FilterError as e:
            raise _unsafe(archive, str(e)) from None
    else:
        tar.extractall(into, members=_checked_members(tar, archive))


def is_model_dir(path: Path) -> bool:
    """Whether ``path`` is an unpacked model.

    Args:
        path: a directory (anything else is not a model directory).

    Returns:
        True when it holds a model file at its top level (see ``MODEL_MARKERS``).
    """
    return path.is_dir() and any((path / m).exists() for m in MODEL_MARKERS)


def _model_root(tmp: Path, origin: str) -> Path:
    """The unpacked model directory: ``tmp``, or its single top folder (``model/...`` archives)."""
    root = tmp
    for _ in range(3):
        if is_model_dir(root):
            return root
        entries = [p for p in root.iterdir() if not p.name.startswith(".")]
        if len(entries) != 1 or not entries[0].is_dir():
            break
        root = entries[0]
    found = ", ".join(sorted(p.name for p in root.iterdir())[:6]) or "nothing"
    raise DownloadError(
        f"archive from {origin} holds no model files (no {' / '.join(MODEL_MARKERS[:3])} at its top level "
        f"or in a single folder; found {found})",
        "it is not a model archive: download the model's .tar.gz again, or pass its unpacked directory",
    )


# What to do about a corrupt archive: one that edgebert downloaded is not kept, so it is fetched
# again; one given by hand is the user's file, which only a new download of their own replaces.
AGAIN_DOWNLOADED = "run the command again to download it anew"
AGAIN_BY_HAND = "download the .tar.gz again, or pass the model's unpacked directory"


def _why_corrupt(e: BaseException) -> str:
    """tarfile's reason in a few words (its ReadError for ``r:*`` lists every method, one per line)."""
    if isinstance(e, tarfile.ReadError) and "could not be opened successfully" in str(e):
        return "not a tar archive, compressed or not"
    if isinstance(e, EOFError):
        return "it ends early"
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    return lines[0].rstrip(":") if lines else type(e).__name__


def extract_tar(archive: Path, dest: Path, origin: str | None = None, fix: str = AGAIN_DOWNLOADED) -> Path:
    """Extracts a tar archive into ``dest`` safely and atomically; unwraps a single top folder.

    Args:
        archive: the tar file (compressed or not).
        dest: the directory to create; it must not exist, and its parent must.
        origin: where the archive came from, named in errors (default: its file name).
        fix: what the error for a corrupt archive tells the user to do (``AGAIN_DOWNLOADED``
            for what edgebert fetched, ``AGAIN_BY_HAND`` for a file given as SOURCE).

    Returns:
        ``dest``, holding the model files at its top level.

    Raises:
        DownloadError: the archive is corrupt, unsafe, or holds no model files; nothing
            is left at ``dest``.
    """
    origin = origin or archive.name
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=".extract-"))
    try:
        try:
            with tarfile.open(archive, "r:*") as tar:
                _extract_all(tar, tmp, archive.name)
        except (tarfile.TarError, EOFError, OSError, ValueError) as e:
            raise DownloadError(f"archive {archive.name} is corrupt or truncated: {_why_corrupt(e)}", fix) from None
        os.replace(_model_root(tmp, origin), dest)
        return dest
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def is_archive(path: Path) -> bool:
    """Whether ``path`` is a file named as a model archive (see ``ARCHIVE_SUFFIXES``)."""
    return path.is_file() and path.name.lower().endswith(ARCHIVE_SUFFIXES)


def unpack_by_hand(path: Path, dest: Path) -> Path:
    """Extracts an archive the user downloaded in a browser, refusing a saved web page.

    Args:
        path: the archive given as SOURCE.
        dest: the directory to create (see ``extract_tar``).

    Returns:
        ``dest``.

    Raises:
        DownloadError: the file is a web page, or ``extract_tar`` refused it.
    """
    with open(path, "rb") as f:
        head = f.read(64)
    if looks_like_web_page(head):
        raise DownloadError(
            f"{path} is a saved web page, not a model archive",
            "the browser saved the page that links the download: download the .tar.gz itself",
        )
    return extract_tar(path, dest, origin=str(path), fix=AGAIN_BY_HAND)
