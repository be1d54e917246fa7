"""Gives back the pages of a model file that a runtime mapped and no longer reads.

LiteRT maps the ``.tflite`` file read-only. XNNPACK then runs the dense products from weights it
packed (into its weight-cache file, or into memory on the Interpreter path), so the file's own
copy of those weights is never read again, yet every page the load touched stays counted in
the process's resident memory: with the file still in the page cache (just exported, or just
copied) the load maps it in large folios, and the BERT-base int8 runner peaked at 218 MB (1.92x
its 114 MB file) instead of 174 MB read cold (benchmarks/, 2026-12-07).

``release_mapped_file`` tells the kernel (``madvise(MADV_DONTNEED)``) that this process no longer
needs those pages. On a read-only file mapping that only drops them from the process: a later read
faults the same bytes back in from the file, so nothing can be lost. ``MADV_RANDOM`` first, so that
what the runtime does still read (embedding rows, LayerNorm parameters) comes back a page at a
time: without it a few embedding lookups mapped 11 MB of the default model's 24 MB file back in
(whole large folios of the page cache), with it 0.9 MB. Linux only; elsewhere it does nothing.
"""

from __future__ import annotations

import ctypes
import os
import sys
from collections.abc import Iterator
from pathlib import Path

_MADV_RANDOM, _MADV_DONTNEED = 1, 4  # the same values on every Linux architecture


def _mappings(path: str | os.PathLike, smaps: bool = False) -> Iterator[tuple[int, int, bool, int | None]]:
    """Yields ``(start, end, writable, rss_bytes)`` for this process's mappings of ``path``, from
    ``/proc/self/maps`` (``rss_bytes`` None) or ``/proc/self/smaps``; nothing where procfs is missing
    (not Linux, or a sandbox that hides it)."""
    real = os.path.realpath(path)
    found: tuple[int, int, bool] | None = None  # the mapping of ``path`` whose fields smaps is listing
    try:
        with open(f"/proc/self/{'smaps' if smaps else 'maps'}", encoding="utf-8", errors="replace") as lines:
            for line in lines:
                parts = line.rstrip("\n").split(maxsplit=5)
                if parts and parts[0].endswith(":"):  # an smaps field of the last mapping
                    if found is not None and parts[0] == "Rss:":
                        yield (*found, int(parts[1]) * 1024)
                        found = None
                    continue
                found = None
                if len(parts) == 6 and parts[5] == real:
                    start, end = (int(x, 16) for x in parts[0].split("-"))
                    if smaps:
                        found = (start, end, "w" in parts[1])
                    else:
                        yield start, end, "w" in parts[1], None
    except OSError:
        return


def mapped_ranges(path: str | os.PathLike) -> list[tuple[int, int, bool]]:
    """This process's mappings of ``path``: (start, end, writable)."""
    return [(start, end, writable) for start, end, writable, _ in _mappings(path)]


def resident_bytes(path: str | os.PathLike) -> int:
    """How much of ``path`` this process holds resident (``Rss`` of its mappings, Linux)."""
    return sum(rss or 0 for _, _, _, rss in _mappings(path, smaps=True))  # smaps: rss is always a count


def release_mapped_file(path: str | os.PathLike) -> int:
    """Drops this process's resident pages of the read-only mappings of ``path`` (and asks for
    single pages, no read-ahead, when they are read again).

    Writable mappings are left alone (dropping a private page that was written would lose the
    write). Returns the bytes of address space advised (0 where the platform has no such call).
    """
    if not sys.platform.startswith("linux"):
        return 0
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        madvise = libc.madvise
    except (OSError, AttributeError):
        return 0
    madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    madvise.restype = ctypes.c_int
    advised = 0
    for start, end, writable in mapped_ranges(Path(path)):
        if writable:
            continue
        madvise(start, end - start, _MADV_RANDOM)
        if madvise(start, end - start, _MADV_DONTNEED) == 0:
            advised += end - start
    return advised
