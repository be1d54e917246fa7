import json
import subprocess
import sys

import pytest

from edgebert.errors import EdgebertError
from edgebert.hub import catalog


def test_catalog_holds_the_whole_collection():
    models = catalog.all_models()
    assert len(models) == 62
    assert len({m.handle for m in models}) == 62
    by_format = {}
    for m in models:
        by_format.setdefault(m.format, []).append(m)
    assert len(by_format["tf2_saved_model"]) == 32 and len(by_format["tf1_hub_module"]) == 30
    small_tf2 = [m for m in models if m.handle.startswith("tensorflow/small_bert/")]
    small_tf1 = [m for m in models if m.handle.startswith("google/small_bert/")]
    assert len(small_tf2) == 24 and len(small_tf1) == 24
    assert {(m.layers, m.hidden) for m in small_tf2} == {
        (L, H) for L in (2, 4, 6, 8, 10, 12) for H in (128, 256, 512, 768)
    }


@pytest.mark.parametrize(
    "handle,L,H,A,casing,vocab",
    [
        ("tensorflow/bert_en_uncased_L-24_H-1024_A-16/4", 24, 1024, 16, "uncased", 30522),
        ("tensorflow/bert_en_wwm_cased_L-24_H-1024_A-16", 24, 1024, 16, "cased", 28996),
        ("tensorflow/bert_zh_L-12_H-768_A-12/4", 12, 768, 12, "uncased", 21128),
        ("https://tfhub.dev/tensorflow/bert_multi_cased_L-12_H-768_A-12/4", 12, 768, 12, "cased", 119547),
        ("google/small_bert/bert_uncased_L-4_H-256_A-4", 4, 256, 4, "uncased", 30522),
        ("google/bert_chinese_L-12_H-768_A-12/1", 12, 768, 12, "uncased", 21128),
    ],
)
def test_lookup_architecture(handle, L, H, A, casing, vocab):
    m = catalog.lookup(handle)
    assert (m.layers, m.hidden, m.heads, m.intermediate) == (L, H, A, 4 * H)
    assert (m.casing, m.vocab_size) == (casing, vocab)
    assert m.url.startswith("https://tfhub.dev/") and m.url.endswith("?tf-hub-format=compressed")


def test_unknown_handle_is_a_clear_error():
    with pytest.raises(EdgebertError, match="unknown model handle 'tensorflow/bert_nope'"):
        catalog.lookup("tensorflow/bert_nope")


def test_models_json_cli_lists_all_62():
    r = subprocess.run([sys.executable, "-m", "edgebert", "models", "--json"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    assert len(rows) == 62
    for key in ("handle", "layers", "hidden", "heads", "casing", "format", "url", "preprocess"):
        assert all(key in row for row in rows)


def test_models_filters(capsys):
    from edgebert.cli import main

    assert main(["models", "--layers", "24", "--casing", "cased", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert sorted(r["handle"] for r in rows) == [
        "google/bert_cased_L-24_H-1024_A-16/1",
        "tensorflow/bert_en_cased_L-24_H-1024_A-16/4",
        "tensorflow/bert_en_wwm_cased_L-24_H-1024_A-16/4",
    ]


def test_importing_edgebert_does_not_import_tensorflow():
    code = (
        "import sys, edgebert, edgebert.cli, edgebert.hub.catalog, edgebert.hub.download, edgebert.hub.default_model;"
        "print('tensorflow' in sys.modules)"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.strip() == "False", r.stderr


def test_the_runtime_imports_no_download_code():
    """A device process (``import edgebert``, load, run) pays no RSS for HTTP, TLS and archives:
    they cost about 7 MB, a tenth of the 1.5x-the-file memory bar on BERT-base."""
    code = "import sys, edgebert; print(sorted(m for m in ('ssl', 'http.client', 'tarfile', 'edgebert.hub.download') if m in sys.modules))"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.strip() == "[]", r.stdout + r.stderr


@pytest.mark.parametrize(
    "address,handle",
    [
        (
            "https://www.kaggle.com/models/tensorflow/bert/tensorFlow2/en-uncased-l-12-h-768-a-12/4",
            "tensorflow/bert_en_uncased_L-12_H-768_A-12/4",
        ),
        (
            "https://www.kaggle.com/models/tensorflow/bert/frameworks/TensorFlow2/variations/"
            "bert-en-uncased-l-2-h-128-a-2/versions/2?tfhub-redirect=true",
            "tensorflow/small_bert/bert_en_uncased_L-2_H-128_A-2/2",
        ),
        (
            "tensorflow/bert/TensorFlow2/en-wwm-cased-l-24-h-1024-a-16",
            "tensorflow/bert_en_wwm_cased_L-24_H-1024_A-16/4",
        ),
        ("google/bert/tensorFlow1/uncased-l-12-h-768-a-12/1", "google/bert_uncased_L-12_H-768_A-12/1"),
        (
            "https://kaggle.com/models/google/bert/tensorFlow1/chinese-l-12-h-768-a-12/1",
            "google/bert_chinese_L-12_H-768_A-12/1",
        ),
    ],
)
def test_kaggle_addresses_and_handles_map_to_catalog_entries(address, handle):
    assert catalog.is_handle(address)
    m = catalog.lookup(address)
    assert m.handle == handle
    assert catalog.lookup(m.kaggle_url) == m  # and back: the entry names its Kaggle page


def test_kaggle_names_are_data_and_unique():
    models = catalog.all_models()
    named = [m.kaggle for m in models if m.kaggle]
    assert len(named) == len(set(named)) == 38  # all but the 24 TF1 Small BERTs, unknown here
    for m in models:
        tf2, tf1 = "tensorflow/bert/tensorFlow2/", "google/bert/tensorFlow1/"
        assert m.kaggle is None or m.kaggle.startswith(tf2 if m.format == "tf2_saved_model" else tf1)
        assert m.kaggle is None or m.kaggle.rsplit("/", 1)[1] == m.handle.rsplit("/", 1)[1]  # same version


def test_tf1_small_bert_pin_to_version_1_is_recorded():
    small_tf1 = [m for m in catalog.all_models() if m.handle.startswith("google/small_bert/")]
    assert all(m.handle.endswith("/1") and m.note.startswith("pinned to /1: ") for m in small_tf1)
    assert all(m.note is None for m in catalog.all_models() if m not in small_tf1)


def test_other_version_of_a_catalog_model_names_the_catalog_one():
    with pytest.raises(
        EdgebertError,
        match=r"is not the catalog's version of that model "
        r"\(tensorflow/bert_en_uncased_L-12_H-768_A-12/4\)",
    ):
        catalog.lookup("https://www.kaggle.com/models/tensorflow/bert/tensorFlow2/en-uncased-l-12-h-768-a-12/3")
