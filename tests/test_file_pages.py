"""``edgebert.runtime.file_pages``: a runtime's read-only model mapping given back to the kernel, the bytes
read again unchanged, written private pages never dropped."""

import hashlib
import mmap
import os
import sys

import pytest

from edgebert.runtime import file_pages

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="madvise and /proc are Linux's")

MIB = 1 << 20


def _file(tmp_path, size=4 * MIB):
    path = tmp_path / "model.bin"
    path.write_bytes(os.urandom(size))
    return path


def test_read_only_mapping_is_dropped_and_reads_back_the_same_bytes(tmp_path):
    path = _file(tmp_path)
    want = hashlib.sha256(path.read_bytes()).hexdigest()
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
        assert hashlib.sha256(m[:]).hexdigest() == want  # every page touched
        assert file_pages.resident_bytes(path) >= 4 * MIB
        assert file_pages.release_mapped_file(path) == 4 * MIB
        assert file_pages.resident_bytes(path) == 0
        assert hashlib.sha256(m[:]).hexdigest() == want
        assert file_pages.resident_bytes(path) >= 4 * MIB


def test_written_private_mapping_is_left_alone(tmp_path):
    path = _file(tmp_path, MIB)
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY) as m:
        m[:5] = b"hello"  # a private copy of that page now holds the only copy of this write
        assert file_pages.mapped_ranges(path)[0][2] is True
        assert file_pages.release_mapped_file(path) == 0
        assert m[:5] == b"hello"
        assert file_pages.resident_bytes(path) >= 4096


def test_file_not_mapped_releases_nothing(tmp_path):
    path = _file(tmp_path, 8192)
    assert file_pages.mapped_ranges(path) == [] and file_pages.release_mapped_file(path) == 0
    assert file_pages.resident_bytes(path) == 0
