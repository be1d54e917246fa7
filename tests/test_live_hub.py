"""Opt-in check against the real service: ``EDGEBERT_LIVE=1 pytest -m live tests/test_live_hub.py``.

Asks tfhub.dev for one handle of each kind (and the TF1 Small BERT /2 that the catalog does
not pin) with a ranged request, as the downloader does, and records every hop's status code
and headers, the final host and the first bytes into a JSON report
(``$EDGEBERT_LIVE_REPORT``, default ``live_hub_report.json``), so the unknowns the loopback
tests assume (308s, Range support, transcoding, hash headers, Kaggle names) can be settled
on any connected machine. Skipped unless ``EDGEBERT_LIVE=1``; deselected by default addopts.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from edgebert.hub import catalog, http_fetch

pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(os.environ.get("EDGEBERT_LIVE") != "1", reason="set EDGEBERT_LIVE=1 to ask the real service"),
]

KINDS = {
    "tf2_bert": "tensorflow/bert_en_uncased_L-12_H-768_A-12/4",
    "tf2_small_bert": "tensorflow/small_bert/bert_en_uncased_L-2_H-128_A-2/2",
    "tf1_bert": "google/bert_uncased_L-12_H-768_A-12/1",
    "tf1_small_bert": "google/small_bert/bert_uncased_L-2_H-128_A-2/1",
}
UNPINNED = {
    "tf1_small_bert_v2": "https://tfhub.dev/google/small_bert/bert_uncased_L-2_H-128_A-2/2?tf-hub-format=compressed"
}
HEADERS = (
    "Location",
    "Content-Type",
    "Content-Length",
    "Content-Range",
    "Accept-Ranges",
    "ETag",
    "Last-Modified",
    "Content-Encoding",
    "x-goog-hash",
    "x-goog-stored-content-encoding",
    "x-goog-stored-content-length",
    "Retry-After",
    "Transfer-Encoding",
)


class _Recorder(http_fetch._Redirects):
    """The downloader's redirect handler, noting each hop."""

    def __init__(self, hops: list[dict]):
        super().__init__()
        self.hops = hops

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        self.hops.append(_hop(code, req.full_url, headers))
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _hop(status: int, url: str, headers) -> dict:
    parts = urllib.parse.urlsplit(url)
    return {
        "status": status,
        "host": parts.hostname,
        "path": parts.path,  # no query: signed URLs hold tokens
        "headers": {h: headers.get(h) for h in HEADERS if headers.get(h) is not None},
    }


def _probe(url: str) -> dict:
    hops: list[dict] = []
    req = urllib.request.Request(url, headers={"User-Agent": "edgebert", "Range": "bytes=0-1023"})
    try:
        with urllib.request.build_opener(_Recorder(hops)).open(req, timeout=60) as resp:
            first = resp.read(1024)
            hops.append(_hop(resp.status, resp.geturl(), resp.headers))
    except urllib.error.HTTPError as e:
        hops.append(_hop(e.code, e.geturl(), e.headers))
        first = b""
    except (urllib.error.URLError, OSError) as e:  # recorded too: the report says where it stopped
        hops.append(
            {
                "status": None,
                "host": urllib.parse.urlsplit(url).hostname,
                "path": None,
                "error": str(getattr(e, "reason", e)),
            }
        )
        first = b""
    return {
        "url": url,
        "hops": hops,
        "final_host": hops[-1]["host"],
        "final_status": hops[-1]["status"],
        "first_bytes_hex": first[:16].hex(),
        "gzip": first[:2] == b"\x1f\x8b",
    }


def test_live_hub_answers_for_each_kind(monkeypatch):
    monkeypatch.delenv("EDGEBERT_HUB_MIRROR", raising=False)
    report = {}
    for kind, handle in KINDS.items():
        entry = catalog.lookup(handle)
        probe = _probe(entry.url)
        variation = entry.kaggle.split("/")[3] if entry.kaggle else None  # does tfhub.dev land on it?
        report[kind] = probe | {
            "handle": entry.handle,
            "kaggle": entry.kaggle,
            "kaggle_in_path": bool(variation) and any(variation in (h["path"] or "").lower() for h in probe["hops"]),
        }
    for kind, url in UNPINNED.items():
        report[kind] = _probe(url)
    out = Path(os.environ.get("EDGEBERT_LIVE_REPORT", "live_hub_report.json"))
    out.write_text(json.dumps(report, indent=1))
    print(f"live report: {out.resolve()}")
    for kind in KINDS:
        assert report[kind]["final_status"] in (200, 206) and report[kind]["gzip"], (kind, report[kind])
