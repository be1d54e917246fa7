"""Downloads against a loopback server that misbehaves as the real service does.

Each test reproduces one failure seen with tfhub.dev / Kaggle / Cloud Storage (see issue 19)
and asserts the outcome: success with verified bytes, or one line naming the final URL and
the fix, and never a half-written cache entry. No TensorFlow: the "model" is a small
archive with a ``saved_model.pb`` marker.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tarfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from hub_server import WEB_PAGE, HubServer, escaping_tar_gz, symlink_escaping_tar_gz, tar_gz_of, tar_gz_of_dir

from edgebert.cli import main
from edgebert.errors import DownloadError
from edgebert.exporters.sources.resolve import resolve_source
from edgebert.hub import download, http_fetch
from edgebert.hub.archive import extract_tar

HANDLE = "tensorflow/small_bert/bert_en_uncased_L-2_H-128_A-2/2"
ENTRY = HANDLE.replace("/", "__")
URL = f"https://tfhub.dev/{HANDLE}?tf-hub-format=compressed"
MODEL = {
    "saved_model.pb": b"\x08\x01fake saved model",
    "variables/variables.index": b"index",
    "variables/variables.data-00000-of-00001": os.urandom(200_000),
}  # incompressible: halves are real


@pytest.fixture(scope="module")
def archive() -> bytes:
    return tar_gz_of(MODEL)


@pytest.fixture
def sleeps(monkeypatch) -> list[float]:
    """The backoff delays asked for, instead of waiting them."""
    out: list[float] = []
    monkeypatch.setattr(http_fetch, "_sleep", out.append)
    return out


def _models() -> list[str]:
    root = download.cache_dir() / "models"
    return sorted(os.listdir(root)) if root.exists() else []


def _downloads() -> list[str]:
    root = download.cache_dir() / "downloads"
    return sorted(p for p in os.listdir(root) if not p.endswith(".lock")) if root.exists() else []


def _storage(hub: HubServer) -> str:
    return f"{hub.url}/storage/model.tar.gz"


def _assert_model(entry: Path) -> None:
    for name, data in MODEL.items():
        assert (entry / name).read_bytes() == data


def _fails(hub: HubServer, match: str) -> DownloadError:
    with pytest.raises(DownloadError, match=match) as e:
        download.download_model(HANDLE, URL)
    assert "\n" not in str(e.value)
    assert _models() == []  # no half entry
    return e.value


def _cli_error(capsys, *argv: str) -> str:
    """``edgebert export`` fails with exit code 1 and exactly one error line, no traceback."""
    assert main(["export", *argv]) == 1
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.startswith("edgebert: error: ")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


# --- redirects ----------------------------------------------------------------------------


def test_308_redirect_is_followed(hub):
    hub.mode = "redirect_308"
    _assert_model(download.download_model(HANDLE, URL))
    assert hub.hits == [f"/{HANDLE}?tf-hub-format=compressed", "/storage/model.tar.gz"]


def _urllib_of_python_310(monkeypatch) -> None:
    """Makes urllib's redirect handler behave as Python 3.10's: no 308."""
    base = urllib.request.HTTPRedirectHandler
    monkeypatch.delattr(base, "http_error_308", raising=False)
    original = base.redirect_request

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        if code not in (301, 302, 303, 307):
            raise urllib.error.HTTPError(req.full_url, code, msg, headers, fp)
        return original(self, req, fp, code, msg, headers, newurl)

    monkeypatch.setattr(base, "redirect_request", redirect_request)


def test_308_redirect_on_python_310_urllib(hub, monkeypatch):
    hub.mode = "redirect_308"
    _urllib_of_python_310(monkeypatch)
    with pytest.raises(urllib.error.HTTPError, match="308"):  # the bug, reproduced
        urllib.request.urlopen(f"{hub.url}/{HANDLE}?tf-hub-format=compressed")
    _assert_model(download.download_model(HANDLE, URL))


# --- cut-offs and resuming ----------------------------------------------------------------


def test_chunked_cut_off_is_one_line_error(hub, capsys, sleeps):
    hub.mode = "chunked_cut"  # every answer stops half-way through a chunked body
    e = _fails(hub, rf"download of {_storage(hub)} broke off after \d+ bytes \(IncompleteRead\)")
    assert "run the command again" in str(e)
    assert hub.storage_hits() == http_fetch.MAX_TRIES and len(sleeps) == http_fetch.MAX_TRIES - 1
    hub.hits.clear()
    assert "broke off after" in _cli_error(capsys, HANDLE)


def test_chunked_cut_once_resumes(hub, archive, sleeps):
    hub.mode, hub.cut_first = "chunked", len(archive) // 2
    _assert_model(download.download_model(HANDLE, URL))
    assert hub.storage_hits() == 2 and hub.storage_headers[1]["Range"] == f"bytes={len(archive) // 2}-"


def test_download_interrupted_at_half_resumes_to_the_same_verified_archive(hub, archive, sleeps, tmp_path):
    half = len(archive) // 2
    hub.cut_first = half  # Content-Length says all, the connection closes at 50%
    dest = tmp_path / "a.tar.gz"
    http_fetch.fetch(URL, dest, sha256=hashlib.sha256(archive).hexdigest())
    assert dest.read_bytes() == archive
    first, second = hub.storage_headers
    assert "Range" not in first
    assert second["Range"] == f"bytes={half}-" and second["If-Range"].startswith('"')
    assert sorted(os.listdir(tmp_path)) == ["a.tar.gz"]  # the part and its validators are gone


def test_cut_off_download_is_resumed_by_the_next_run(hub, archive, sleeps, monkeypatch):
    half = len(archive) // 2
    monkeypatch.setattr(http_fetch, "MAX_TRIES", 1)
    hub.cut_first = half
    _fails(hub, rf"download of {_storage(hub)} is truncated: got {half} of {len(archive)} bytes")
    assert _downloads() == [f"{ENTRY}.tar.gz.partial", f"{ENTRY}.tar.gz.partial.json"]
    assert (download.downloads_dir() / f"{ENTRY}.tar.gz.partial").stat().st_size == half
    _assert_model(download.download_model(HANDLE, URL))  # the next run
    assert hub.storage_headers[-1]["Range"] == f"bytes={half}-"
    assert _downloads() == [] and _models() == [ENTRY]


def test_changed_object_is_downloaded_whole_not_spliced(hub, archive, sleeps, monkeypatch, tmp_path):
    monkeypatch.setattr(http_fetch, "MAX_TRIES", 1)
    hub.cut_first = len(archive) // 2
    with pytest.raises(DownloadError, match="truncated"):
        http_fetch.fetch(URL, tmp_path / "a.tar.gz")
    hub.etag_salt = "-v2"  # the object changed: If-Range no longer matches, the server sends all
    http_fetch.fetch(URL, tmp_path / "a.tar.gz")
    assert (tmp_path / "a.tar.gz").read_bytes() == archive
    assert "Range" in hub.storage_headers[-1]


# --- what the server sends ----------------------------------------------------------------


def test_missing_hash_header_and_length_still_verifies_the_archive(hub):
    hub.mode = "no_hash"
    _assert_model(download.download_model(HANDLE, URL))


@pytest.mark.parametrize("mode,ctype", [("html", "text/html"), ("html_octet", "application/x-gzip")])
def test_web_page_instead_of_archive_is_named(hub, sleeps, capsys, mode, ctype):
    hub.mode = mode
    e = _fails(hub, rf"{_storage(hub)} sent a web page \(Content-Type {ctype}, starting b'<!DOCTYPE html>")
    assert "corrupt" not in str(e) and "edgebert export path/to/model.tar.gz" in str(e)
    assert hub.storage_hits() == 1 and sleeps == [] and _downloads() == []
    assert "sent a web page" in _cli_error(capsys, HANDLE)


def test_transcoded_object_skips_the_stored_md5_and_says_so(hub, capsys):
    hub.mode = "transcoded"  # stored gzip-encoded: x-goog-hash is of bytes never sent
    _assert_model(download.download_model(HANDLE, URL))
    assert "served decompressed (stored gzip-encoded)" in capsys.readouterr().err


def test_gzip_encoded_object_is_checked_against_its_md5_then_decoded(hub, archive, tmp_path):
    hub.mode = "gzip_encoded"
    http_fetch.fetch(URL, tmp_path / "a.tar.gz", sha256=hashlib.sha256(archive).hexdigest())
    assert (tmp_path / "a.tar.gz").read_bytes() == archive


# --- refusals and retries -----------------------------------------------------------------


def test_403_is_not_retried_and_names_the_final_url_and_a_way_round(hub, sleeps):
    hub.answers = [(403, {})]
    with pytest.raises(DownloadError) as e:
        download.download_model(HANDLE, URL, manual="https://www.kaggle.com/models/x/y/tensorFlow2/z/2")
    msg = str(e.value)
    assert f"download of {_storage(hub)} failed: HTTP 403 Forbidden" in msg
    assert "download the archive from https://www.kaggle.com/models/x/y/tensorFlow2/z/2 in a browser" in msg
    assert hub.storage_hits() == 1 and sleeps == [] and _models() == []
    _assert_model(download.download_model(HANDLE, URL))  # 403 then 200: the next run works


@pytest.mark.parametrize(
    "host,hint",
    [
        ("https://storage.googleapis.com/tfhub-modules/x.tar.gz?X-Goog-Signature=1", "signed storage link"),
        ("https://www.kaggle.com/models/tensorflow/bert/tensorFlow2/x/2", "terms accepted"),
        ("https://tfhub.dev/tensorflow/x/2?tf-hub-format=compressed", "report 403 from tfhub.dev"),
    ],
)
def test_403_hint_depends_on_who_refused(host, hint):
    assert hint in http_fetch._forbidden_fix(host, None)


def test_429_honours_retry_after_capped(hub, sleeps, monkeypatch):
    monkeypatch.setattr(http_fetch, "RETRY_AFTER_CAP_S", 5.0)
    hub.answers = [(429, {"Retry-After": "2"}), (429, {"Retry-After": "3600"})]
    _assert_model(download.download_model(HANDLE, URL))
    assert sleeps == [2.0, 5.0] and hub.storage_hits() == 3


def test_503_then_200_backs_off(hub, sleeps, monkeypatch):
    monkeypatch.setenv("EDGEBERT_RETRY_BASE_S", "0.25")
    hub.answers = [(503, {}), (503, {})]
    _assert_model(download.download_model(HANDLE, URL))
    assert sleeps == [0.25, 0.5]


def test_5xx_that_persists_gives_up_with_one_line(hub, sleeps, capsys):
    hub.answers = [(503, {})] * (2 * http_fetch.MAX_TRIES)
    e = _fails(hub, rf"download of {_storage(hub)} failed after {http_fetch.MAX_TRIES} tries: HTTP 503")
    assert "run the command again later" in str(e)
    assert hub.storage_hits() == http_fetch.MAX_TRIES


# --- archives -----------------------------------------------------------------------------


def test_archive_rooted_at_a_folder_is_unwrapped(hub, tmp_path):
    (tmp_path / "m" / "variables").mkdir(parents=True)
    for name, data in MODEL.items():
        (tmp_path / "m" / name).write_bytes(data)
    hub.archive = tar_gz_of_dir(tmp_path / "m", root="bert_en_uncased_L-2_H-128_A-2_2")
    _assert_model(download.download_model(HANDLE, URL))
    assert _models() == [ENTRY]


def test_archive_without_model_files_is_refused_and_not_cached(hub):
    hub.archive = tar_gz_of({"docs/README.txt": b"hello", "docs/LICENSE": b"x"})
    e = _fails(hub, rf"archive from {_storage(hub)} holds no model files")
    assert "found README.txt" in str(e) or "found LICENSE, README.txt" in str(e)
    assert _downloads() == []


def test_bad_entry_left_by_an_older_version_is_replaced(hub):
    stale = download.entry_dir(HANDLE) / "bert_folder"  # a folder-rooted archive cached as it was
    stale.mkdir(parents=True)
    (stale / "saved_model.pb").write_bytes(b"old")
    _assert_model(download.download_model(HANDLE, URL))
    assert not (download.entry_dir(HANDLE) / "bert_folder").exists()


def _python_without_tar_filters(monkeypatch) -> None:
    """tarfile as in Python 3.10.0-3.10.11: no ``filter=``, no data_filter, no FilterError."""
    monkeypatch.delattr(tarfile, "data_filter")
    monkeypatch.delattr(tarfile, "FilterError")
    original = tarfile.TarFile.extractall

    def extractall(self, path=".", members=None, *, numeric_owner=False, **kw):
        assert "filter" not in kw, "this Python has no filter="
        return original(self, path, members, numeric_owner=numeric_owner)

    monkeypatch.setattr(tarfile.TarFile, "extractall", extractall)


@pytest.mark.parametrize("bad", [escaping_tar_gz, symlink_escaping_tar_gz])
def test_python_without_tar_filter_refuses_the_same_members(bad, tmp_path, monkeypatch):
    _python_without_tar_filters(monkeypatch)
    (tmp_path / "bad.tar.gz").write_bytes(bad())
    with pytest.raises(DownloadError, match="is unsafe"):
        extract_tar(tmp_path / "bad.tar.gz", tmp_path / "out")
    assert sorted(os.listdir(tmp_path)) == ["bad.tar.gz"]


def test_python_without_tar_filter_still_extracts(archive, tmp_path, monkeypatch):
    _python_without_tar_filters(monkeypatch)
    (tmp_path / "a.tar.gz").write_bytes(archive)
    _assert_model(extract_tar(tmp_path / "a.tar.gz", tmp_path / "out"))


def test_archive_downloaded_by_hand_is_a_source(archive, tmp_path):
    path = tmp_path / "model.tar.gz"
    path.write_bytes(tar_gz_of({f"bert/{k}": v for k, v in MODEL.items()}))
    entry = resolve_source(path)
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    assert entry == download.cache_dir() / "models" / f"archive__{sha}"
    _assert_model(entry)
    assert resolve_source(str(path)) == entry  # reused, keyed by content


def test_saved_web_page_given_as_archive_is_named(tmp_path, capsys):
    path = tmp_path / "model.tar.gz"
    path.write_bytes(WEB_PAGE)
    assert f"{path} is a saved web page, not a model archive" in _cli_error(capsys, str(path))
    assert _models() == []


# --- concurrency --------------------------------------------------------------------------


def test_two_concurrent_downloads_of_one_handle_fetch_it_once(hub, tmp_path):
    code = f"import sys; from edgebert.hub import download; print(download.download_model({HANDLE!r}, {URL!r}))"
    env = {**os.environ, "EDGEBERT_HUB_MIRROR": hub.url}
    logs = [tmp_path / f"err{i}.txt" for i in range(2)]
    with download._locked(ENTRY):  # both start while the lock is held, so they must queue
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=open(log, "w"), text=True
            )
            for log in logs
        ]
        deadline = time.monotonic() + 30
        while not all("waiting for another edgebert" in log.read_text() for log in logs):
            assert time.monotonic() < deadline and all(p.poll() is None for p in procs), [
                log.read_text() for log in logs
            ]
            time.sleep(0.05)
    outs = [p.communicate(timeout=60)[0].strip() for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [log.read_text() for log in logs]
    assert outs[0] == outs[1] == str(download.entry_dir(HANDLE))
    assert hub.storage_hits() == 1 and hub.hits.count(f"/{HANDLE}?tf-hub-format=compressed") == 1
    _assert_model(download.entry_dir(HANDLE))
