"""Downloads from a loopback hub, and the one-line errors every bad source gives."""

import os
import shutil
import subprocess
import sys

import pytest
from hub_server import tar_gz_of_dir

from edgebert.cli import main
from edgebert.errors import DownloadError, SourceError
from edgebert.exporters.sources import load_source
from edgebert.hub import download, http_fetch

HANDLE = "tensorflow/small_bert/bert_en_uncased_L-2_H-128_A-2/2"


@pytest.fixture(scope="module")
def archive(tf2_hub_tiny):
    return tar_gz_of_dir(tf2_hub_tiny)


def _cache_entries():
    root = download.cache_dir() / "models"
    return sorted(os.listdir(root)) if root.exists() else []


def test_handle_downloads_once_verifies_and_imports(hub):
    src = load_source(HANDLE)
    assert src.kind == "tf2_saved_model" and src.config.hidden_size == 32
    assert hub.hits[0] == f"/{HANDLE}?tf-hub-format=compressed" and hub.hits[1] == "/storage/model.tar.gz"
    assert _cache_entries() == [HANDLE.replace("/", "__")]  # no temp files left beside it
    n = len(hub.hits)
    again = load_source("https://tfhub.dev/" + HANDLE)
    assert len(hub.hits) == n and again.path == src.path  # reused from the cache


@pytest.mark.parametrize(
    "mode,message",
    [
        ("truncated", "truncated: got"),
        ("bad_md5", "does not match the server's MD5"),
        ("escape", "is unsafe"),
        ("corrupt", "is corrupt or truncated"),
        ("missing", "HTTP 404"),
        ("chunked_cut", "broke off after"),
        ("html", "sent a web page"),
    ],
)
def test_bad_downloads_leave_no_cache_entry(hub, mode, message):
    hub.mode = mode
    with pytest.raises(DownloadError, match=message) as e:
        load_source(HANDLE)
    if mode == "corrupt":  # edgebert fetched it and kept nothing: fetching again is the fix
        assert e.value.fix == "run the command again to download it anew", e.value
    assert _cache_entries() == []
    assert not (download.cache_dir().parent / "escaped.txt").exists()


def test_archive_downloaded_by_hand_is_read_like_a_download(archive, tmp_path):
    path = tmp_path / "bert_en_uncased_L-2_H-128_A-2_2.tar.gz"
    path.write_bytes(archive)
    src = load_source(path)
    assert src.kind == "tf2_saved_model" and src.config.hidden_size == 32
    assert src.path.parent == download.cache_dir() / "models" and src.path.name.startswith("archive__")


@pytest.mark.parametrize("damage", ["truncated", "not_an_archive"])
def test_corrupt_archive_given_by_hand_is_one_line_with_a_local_fix(damage, archive, tmp_path, capsys):
    """A local .tar.gz that is broken: one line naming it, and a fix for a file the user
    downloaded (nothing was downloaded here, so running the command again would not help)."""
    path = tmp_path / "broken.tar.gz"
    path.write_bytes(archive[: len(archive) // 2] if damage == "truncated" else b"<not a tar archive>\n" * 50)
    assert main(["export", str(path), "-o", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    why = "it ends early" if damage == "truncated" else "not a tar archive, compressed or not"
    assert err.splitlines() == [
        f"edgebert: error: archive broken.tar.gz is corrupt or truncated: {why} "
        "(download the .tar.gz again, or pass the model's unpacked directory)"
    ], err
    assert not (tmp_path / "out").exists() and _cache_entries() == []


def test_sha256_mismatch_is_refused(hub, tmp_path):
    with pytest.raises(DownloadError, match="expected 0000"):
        http_fetch.fetch(f"https://tfhub.dev/{HANDLE}?tf-hub-format=compressed", tmp_path / "a.tar.gz", sha256="0" * 64)
    assert os.listdir(tmp_path) == []


def test_offline_fails_fast_naming_the_address(monkeypatch, capsys):
    monkeypatch.setenv("EDGEBERT_HUB_MIRROR", "http://127.0.0.1:9")  # nothing listens on port 9
    err = _one_line_error(capsys, HANDLE)
    assert f"cannot reach http://127.0.0.1:9/{HANDLE}?tf-hub-format=compressed" in err
    assert "pass the directory as SOURCE" in err
    assert _cache_entries() == []


def _one_line_error(capsys, *argv) -> str:
    """Runs ``edgebert export`` and returns its error: exactly one line, no traceback."""
    assert main(["export", *map(str, argv)]) == 1
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("edgebert: error: ")]
    assert len(errors) == 1 and "Traceback" not in err, err
    return errors[0]


def test_unknown_handle(capsys):
    assert "unknown model handle 'tensorflow/bert_en_uncased_L-99_H-1_A-1'" in _one_line_error(
        capsys, "tensorflow/bert_en_uncased_L-99_H-1_A-1"
    )


def test_missing_path_and_unknown_directory(capsys, tmp_path):
    assert "model source" in _one_line_error(capsys, tmp_path / "nothing-here")
    (tmp_path / "junk").mkdir()
    assert "is not a model edgebert can read" in _one_line_error(capsys, tmp_path / "junk")


def test_missing_files(capsys, hf_tiny, tf1_checkpoint_tiny, tmp_path):
    hf = shutil.copytree(hf_tiny, tmp_path / "hf")
    (hf / "vocab.txt").unlink()
    assert "lacks vocab.txt" in _one_line_error(capsys, hf)
    ck = shutil.copytree(tf1_checkpoint_tiny[0], tmp_path / "uncased_ck")
    for f in ck.glob("bert_model.ckpt.data-*"):
        f.unlink()
    assert "has bert_model.ckpt.index but no bert_model.ckpt.data-* file" in _one_line_error(capsys, ck)


def test_corrupt_variables(capsys, hf_tiny, tf1_checkpoint_tiny, tf2_hub_tiny, tmp_path):
    hf = shutil.copytree(hf_tiny, tmp_path / "hf")
    data = (hf / "model.safetensors").read_bytes()
    (hf / "model.safetensors").write_bytes(data[: len(data) // 2])
    assert "model.safetensors is corrupt or truncated" in _one_line_error(capsys, hf)

    ck = shutil.copytree(tf1_checkpoint_tiny[0], tmp_path / "uncased_ck")
    for f in ck.glob("bert_model.ckpt.data-*"):
        f.write_bytes(f.read_bytes()[:100])
    assert "is corrupt or truncated" in _one_line_error(capsys, ck)

    tf2 = shutil.copytree(tf2_hub_tiny, tmp_path / "tf2")
    for f in (tf2 / "variables").glob("variables.data-*"):
        f.write_bytes(f.read_bytes()[:64])
    assert "cannot load the SavedModel" in _one_line_error(capsys, tf2)


def test_wrong_signature(capsys, tmp_path):
    import tensorflow as tf

    class Classifier(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
        def __call__(self, text):
            return {"logits": tf.zeros([tf.shape(text)[0], 2])}

    m = Classifier()
    tf.saved_model.save(m, str(tmp_path / "clf"), signatures={"serving_default": m.__call__})
    err = _one_line_error(capsys, tmp_path / "clf")
    assert "takes text but holds no BERT encoder edgebert knows" in err
    assert "build it with hub.KerasLayer on a TF Hub BERT encoder, or with `edgebert finetune`" in err


def test_nan_weights_are_refused(hf_tiny, tmp_path):
    from safetensors.numpy import load_file, save_file

    hf = shutil.copytree(hf_tiny, tmp_path / "hf")
    t = load_file(str(hf / "model.safetensors"))
    t["pooler.dense.bias"][0] = float("nan")
    save_file(t, str(hf / "model.safetensors"))
    with pytest.raises(SourceError, match="'pooler/dense/bias' holds NaN or Inf"):
        load_source(hf)


def test_cli_exit_code_in_a_fresh_process(tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "edgebert", "export", str(tmp_path / "missing")], capture_output=True, text=True
    )
    assert r.returncode == 1
    assert r.stderr.strip().splitlines()[-1].startswith("edgebert: error: model source")
