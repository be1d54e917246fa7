"""The manifest contract: one typed value, read and written in one place."""

from __future__ import annotations

import json

import pytest

from edgebert.errors import EdgebertError
from edgebert.model.bundle import FORMAT_VERSION, MANIFEST, Manifest, ModelEntry, read_manifest, write_manifest

ENTRY = {
    "file": "model.tflite",
    "sha256": "ab" * 32,
    "bytes": 10,
    "runtime": "ai-edge-litert",
    "inputs": [{"name": "input_word_ids", "dtype": "int32", "shape": [1, 16]}],
    "outputs": [{"name": "pooled_output", "dtype": "float32", "shape": [1, "hidden"]}],
    "gate": {"passed": True, "misses": []},
    "future_key": [1, 2],
}
MANIFEST_JSON = {
    "format_version": FORMAT_VERSION,
    "architecture": {"hidden_size": 32, "max_position": 40},
    "tokenizer": {"vocab": "vocab.txt", "do_lower_case": True},
    "recipe": {"name": "fp32"},
    "seq_length": None,
    "max_seq_length": 24,
    "models": {"tflite": ENTRY},
    "someday": {"x": 1},
}


def test_json_round_trip_keeps_every_field_including_unknown_ones():
    m = Manifest.from_json(json.loads(json.dumps(MANIFEST_JSON)))
    assert isinstance(m.models["tflite"], ModelEntry) and m.models["tflite"].extra == {"future_key": [1, 2]}
    assert m.extra == {"someday": {"x": 1}} and m.to_json() == MANIFEST_JSON


def test_typed_views():
    m = Manifest.from_json(MANIFEST_JSON)
    assert m.max_length == 24 and m.do_lower_case is True and m.models["tflite"].batch == 1
    dynamic = Manifest.from_json(
        {**MANIFEST_JSON, "max_seq_length": None, "models": {"onnx": {**ENTRY, "inputs": [{"shape": [-1, -1]}]}}}
    )
    assert dynamic.max_length == 40 and dynamic.models["onnx"].batch is None
    assert "max_seq_length" not in dynamic.to_json() and dynamic.to_json()["seq_length"] is None


def test_write_stamps_this_format_version_and_reads_back_equal(tmp_path):
    m = Manifest.from_json({**MANIFEST_JSON, "format_version": 0})
    back = write_manifest(tmp_path, m)
    data = json.loads((tmp_path / MANIFEST).read_text())
    assert data["format_version"] == FORMAT_VERSION and list(data)[0] == "format_version"
    assert back == read_manifest(tmp_path) and back.to_json() == data
    assert not [p for p in tmp_path.iterdir() if p.name != MANIFEST]  # the temp file was renamed


@pytest.mark.parametrize(
    "change, message",
    [
        ({"format_version": FORMAT_VERSION + 1}, "upgrade edgebert"),
        ({"format_version": "1"}, "manifest format '1'"),
        ({"models": None}, "not a complete edgebert manifest"),
    ],
)
def test_bad_manifests_say_what_is_wrong(tmp_path, change, message):
    (tmp_path / MANIFEST).write_text(json.dumps({**MANIFEST_JSON, **change}))
    with pytest.raises(EdgebertError, match=message):
        read_manifest(tmp_path)


def test_a_manifest_without_a_required_field_is_refused(tmp_path):
    (tmp_path / MANIFEST).write_text(json.dumps({k: v for k, v in MANIFEST_JSON.items() if k != "tokenizer"}))
    with pytest.raises(EdgebertError, match="not a complete edgebert manifest.*tokenizer"):
        read_manifest(tmp_path)
