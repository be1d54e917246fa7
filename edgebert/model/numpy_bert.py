"""A plain numpy BERT forward pass: an independent check of every imported reference."""

from __future__ import annotations

import math

import numpy as np

from edgebert.model.config import EMBEDDING_NAMES, MASK_BIAS, POOLER_NAMES, BertConfig, layer_names


def _layer_norm(x, g, b, eps):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * g + b


def _act(x, kind):
    if kind == "gelu_erf":
        from scipy.special import erf  # scipy ships with the export extra

        return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))
    if kind == "gelu_tanh":
        return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))
    return np.maximum(x, 0.0)


def _observe(x, name, w, mask, record, gram):
    if record is not None:
        amax = np.abs(x[mask.astype(bool)]).max(0)
        record[name] = np.maximum(record.get(name, amax), amax)
    x = x * w[name] if name in w else x
    if gram is not None:
        real = x[mask.astype(bool)]
        part = real.T @ real
        gram[name] = part if name not in gram else gram[name] + part
    return x


def forward(
    cfg: BertConfig,
    w: dict,
    ids,
    mask,
    type_ids,
    record: dict | None = None,
    dtype=np.float64,
    gram: dict | None = None,
) -> dict:
    """Returns ``sequence_output``, ``pooled_output``, ``encoder_outputs`` in ``dtype``.

    With ``record`` (a dict), stores the per-channel max-abs over real tokens of the
    inputs of each layer's dense kernels under the ``*_smooth`` names of
    ``bert_config.layer_names`` (what activation smoothing calibrates on), maximised
    over calls. With ``gram``, adds ``X^T X`` over real tokens of each of those inputs as the
    kernels see it (smoothing applied) to the dict's entry (GPTQ's statistics). SmoothQuant scales (``*_smooth``) and int8 word embeddings (``*_int8`` with
    ``*_scale``) are applied as the exported graphs apply them.
    """
    w = {k: np.asarray(v, dtype) for k, v in w.items()}
    ids, mask, type_ids = (np.asarray(a) for a in (ids, mask, type_ids))
    B, S = ids.shape
    e = EMBEDDING_NAMES
    if e["word"] in w:
        word = w[e["word"]][ids]
    else:  # int8 rows with per-row scales (quantize.embedding), already cast to dtype
        word = w[e["word"] + "_int8"][ids] * w[e["word"] + "_scale"][ids]
    x = word + w[e["position"]][:S][None] + w[e["type"]][type_ids]
    x = _layer_norm(x, w[e["ln_g"]], w[e["ln_b"]], cfg.layer_norm_eps)
    bias = (1.0 - mask[:, None, None, :].astype(dtype)) * MASK_BIAS
    nh, dh = cfg.num_heads, cfg.head_size
    outs = []
    for i in range(cfg.num_layers):
        n = layer_names(i)

        def heads(t):
            return t.reshape(B, S, nh, dh).transpose(0, 2, 1, 3)

        xa = _observe(x, n["qkv_smooth"], w, mask, record, gram)
        q = heads(xa @ w[n["q_w"]] + w[n["q_b"]])
        k = heads(xa @ w[n["k_w"]] + w[n["k_b"]])
        v = heads(xa @ w[n["v_w"]] + w[n["v_b"]])
        s = q @ k.transpose(0, 1, 3, 2) / math.sqrt(dh) + bias
        s = np.exp(s - s.max(-1, keepdims=True))
        p = s / s.sum(-1, keepdims=True)
        ctx = (p @ v).transpose(0, 2, 1, 3).reshape(B, S, nh * dh)
        a = _observe(ctx, n["o_smooth"], w, mask, record, gram) @ w[n["o_w"]] + w[n["o_b"]]
        x = _layer_norm(a + x, w[n["ln1_g"]], w[n["ln1_b"]], cfg.layer_norm_eps)
        h = _act(_observe(x, n["ffn_smooth"], w, mask, record, gram) @ w[n["i_w"]] + w[n["i_b"]], cfg.activation)
        h = _observe(h, n["out_smooth"], w, mask, record, gram)
        x = _layer_norm(h @ w[n["out_w"]] + w[n["out_b"]] + x, w[n["ln2_g"]], w[n["ln2_b"]], cfg.layer_norm_eps)
        outs.append(x)
    pooled = np.tanh(x[:, 0] @ w[POOLER_NAMES["w"]] + w[POOLER_NAMES["b"]])
    return {"sequence_output": x, "pooled_output": pooled, "encoder_outputs": outs}
