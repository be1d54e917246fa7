"""Every source format imports into a reference that reproduces the source's own outputs."""

import json

import numpy as np

from edgebert.exporters.convert.reference import build_reference
from edgebert.exporters.sources import load_source
from edgebert.exporters.sources.saved_model_util import load_saved_model
from edgebert.exporters.sources.tf2_saved_model import run_encoder
from edgebert.model import numpy_bert
from fixtures import tiny_models

TOL = 1e-4


def _max_abs(got, want, mask):
    m = mask.astype(bool)
    return max(
        np.abs(got["sequence_output"] - want["sequence_output"])[m].max(),
        np.abs(got["pooled_output"] - want["pooled_output"]).max(),
    )


def _reference_outputs(ref, inputs):
    return run_encoder(load_saved_model(ref.path), *inputs)


def test_hf_source_matches_numpy_forward_of_its_safetensors(hf_tiny, tmp_path):
    src = load_source(hf_tiny)
    assert src.kind == "hf" and src.config.activation == "gelu_erf" and src.do_lower_case
    ref = build_reference(src, tmp_path / "ref")
    inputs = tiny_models.token_inputs(vocab=src.config.vocab_size)
    got = _reference_outputs(ref, inputs)
    want = numpy_bert.forward(src.config, src.weights, *inputs)
    assert _max_abs(got, want, inputs[1]) <= TOL
    assert len(got["encoder_outputs"]) == 2
    np.testing.assert_allclose(got["encoder_outputs"][-1], got["sequence_output"], atol=0)
    np.testing.assert_array_equal(got["default"], got["pooled_output"])
    assert (ref.path / "assets" / "vocab.txt").read_text() == (hf_tiny / "vocab.txt").read_text()


def test_hf_activation_is_carried_not_assumed(tmp_path):
    erf = load_source(tiny_models.make_hf(tmp_path / "erf", hidden_act="gelu"))
    tanh = load_source(tiny_models.make_hf(tmp_path / "tanh", hidden_act="gelu_new"))
    assert (erf.config.activation, tanh.config.activation) == ("gelu_erf", "gelu_tanh")
    inputs = tiny_models.token_inputs(vocab=erf.config.vocab_size)
    a = build_reference(erf, tmp_path / "ra")
    b = build_reference(tanh, tmp_path / "rb")
    # Same weights, different activation: a fixed choice would miss the import tolerance.
    diff = _max_abs(_reference_outputs(a, inputs), _reference_outputs(b, inputs), inputs[1])
    assert diff > 5 * TOL


def test_tf1_checkpoint_matches_the_google_research_graph(tf1_checkpoint_tiny, tmp_path):
    path, graph_out = tf1_checkpoint_tiny
    src = load_source(path)
    assert src.kind == "tf1_checkpoint" and src.config.activation == "gelu_tanh"
    assert src.do_lower_case  # directory named uncased_...
    ref = build_reference(src, tmp_path / "ref")
    inputs = tiny_models.token_inputs(vocab=src.config.vocab_size)
    assert _max_abs(_reference_outputs(ref, inputs), graph_out, inputs[1]) <= TOL


def test_tf1_hub_module_matches_the_module(tf1_hub_tiny, tmp_path):
    path, module_out = tf1_hub_tiny
    src = load_source(path)
    assert src.kind == "tf1_hub_module"
    assert src.config.num_heads == 4  # recovered by running the module, not from a name
    ref = build_reference(src, tmp_path / "ref")
    assert ref.max_abs_vs_source <= TOL
    inputs = tiny_models.token_inputs(vocab=src.config.vocab_size)
    assert _max_abs(_reference_outputs(ref, inputs), module_out, inputs[1]) <= TOL


def test_tf2_hub_encoder_is_its_own_reference_and_its_weights_rebuild_it(tf2_hub_tiny, tmp_path):
    import tensorflow as tf

    from edgebert.exporters.convert.encoder_graph import BertEncoderModule

    src = load_source(tf2_hub_tiny)
    assert src.kind == "tf2_saved_model" and src.saved_model == tf2_hub_tiny
    ref = build_reference(src, tmp_path / "unused")
    assert ref.path == tf2_hub_tiny and not (tmp_path / "unused").exists()
    inputs = tiny_models.token_inputs(vocab=src.config.vocab_size)
    source_out = run_encoder(load_saved_model(tf2_hub_tiny), *inputs)
    rebuilt = BertEncoderModule(src.config, src.weights)
    out = rebuilt(
        {
            "input_word_ids": tf.constant(inputs[0]),
            "input_mask": tf.constant(inputs[1]),
            "input_type_ids": tf.constant(inputs[2]),
        }
    )
    got = {k: out[k].numpy() for k in ("sequence_output", "pooled_output")}
    assert _max_abs(got, source_out, inputs[1]) <= TOL


def test_reference_reads_back_as_a_source(hf_tiny, tmp_path):
    ref = build_reference(load_source(hf_tiny), tmp_path / "ref")
    again = load_source(ref.path)
    assert again.saved_model == ref.path and again.config == ref.config and again.do_lower_case
    src = load_source(hf_tiny)
    for k, v in src.weights.items():
        np.testing.assert_array_equal(again.weights[k], v)


def test_checked_reference_is_reused_and_a_damaged_one_rebuilt(hf_tiny, tmp_path):
    first = build_reference(load_source(hf_tiny), tmp_path / "ref")
    pb = first.path / "saved_model.pb"
    written = pb.stat().st_mtime_ns
    again = build_reference(load_source(hf_tiny), tmp_path / "ref")
    assert again.model is None and pb.stat().st_mtime_ns == written  # read from the cache, not written
    assert (again.sha256, again.max_abs_vs_source, again.config) == (
        first.sha256,
        first.max_abs_vs_source,
        first.config,
    )
    # A byte changed in the cached SavedModel: its digest no longer matches the checked one.
    variables = next((first.path / "variables").glob("variables.data-*"))
    data = bytearray(variables.read_bytes())
    data[len(data) // 2] ^= 0xFF
    variables.write_bytes(bytes(data))
    rebuilt = build_reference(load_source(hf_tiny), tmp_path / "ref")
    assert rebuilt.model is not None and rebuilt.max_abs_vs_source <= TOL  # written and checked again
    assert json.loads((tmp_path / "ref.checked.json").read_text())["sha256"] == rebuilt.sha256
    # A record from another reference format is not trusted either.
    record = tmp_path / "ref.checked.json"
    record.write_text(record.read_text().replace('"format": 1', '"format": 0'))
    assert build_reference(load_source(hf_tiny), tmp_path / "ref").model is not None


def test_default_model_reference_matches_numpy_on_quick_brown_fox(default_model_dir, tmp_path):
    from safetensors.numpy import load_file

    from edgebert.tokenizer.wordpiece import BertTokenizer

    src = load_source(default_model_dir)
    assert src.config.activation == "gelu_erf"  # all-MiniLM-L6-v2's config says "gelu"
    ref = build_reference(src, tmp_path / "ref")
    tok = BertTokenizer(default_model_dir / "vocab.txt", do_lower_case=True)
    enc = tok("The quick brown fox", seq_length=16)
    inputs = (enc["input_word_ids"], enc["input_mask"], enc["input_type_ids"])
    assert inputs[0][0, :6].tolist() == [101, 1996, 4248, 2829, 4419, 102]
    got = _reference_outputs(ref, inputs)
    # An independent numpy forward straight from the safetensors file (HF names, [out, in]).
    t = load_file(str(default_model_dir / "model.safetensors"))
    cfg = json.loads((default_model_dir / "config.json").read_text())
    want = _hf_numpy_forward(t, cfg, *inputs)
    m = inputs[1].astype(bool)
    assert np.abs(got["sequence_output"] - want)[m].max() <= TOL


def _hf_numpy_forward(t, cfg, ids, mask, types):
    from scipy.special import erf

    def ln(x, p):
        mu = x.mean(-1, keepdims=True)
        var = ((x - mu) ** 2).mean(-1, keepdims=True)
        return (x - mu) / np.sqrt(var + cfg["layer_norm_eps"]) * t[p + ".weight"] + t[p + ".bias"]

    def lin(x, p):
        return x @ t[p + ".weight"].T.astype(np.float64) + t[p + ".bias"]

    S, nh = ids.shape[1], cfg["num_attention_heads"]
    x = (
        t["embeddings.word_embeddings.weight"][ids]
        + t["embeddings.position_embeddings.weight"][:S]
        + t["embeddings.token_type_embeddings.weight"][types]
    )
    x = ln(x.astype(np.float64), "embeddings.LayerNorm")
    B, H = ids.shape[0], x.shape[-1]
    dh = H // nh
    bias = (1 - mask[:, None, None, :]) * -1e4
    for i in range(cfg["num_hidden_layers"]):
        p = f"encoder.layer.{i}."
        q, k, v = (
            lin(x, p + f"attention.self.{n}").reshape(B, S, nh, dh).transpose(0, 2, 1, 3)
            for n in ("query", "key", "value")
        )
        s = q @ k.transpose(0, 1, 3, 2) / np.sqrt(dh) + bias
        pr = np.exp(s - s.max(-1, keepdims=True))
        pr /= pr.sum(-1, keepdims=True)
        c = (pr @ v).transpose(0, 2, 1, 3).reshape(B, S, H)
        x = ln(lin(c, p + "attention.output.dense") + x, p + "attention.output.LayerNorm")
        h = lin(x, p + "intermediate.dense")
        h = 0.5 * h * (1 + erf(h / np.sqrt(2)))
        x = ln(lin(h, p + "output.dense") + x, p + "output.LayerNorm")
    return x
