"""The BERT encoder written directly as ONNX, in the fused form ONNX Runtime runs fastest.

ONNX Runtime's transformer optimizer matches almost nothing in the graph tf2onnx writes
(it found one ``BiasGelu`` per layer; NOTES.md lists why: GlobalAveragePool LayerNorms, the
Q/K swap), so this module emits the fused operators itself, node by node from the canonical
weights, with no TensorFlow in the loop:

- ``LayerNormalization`` (ONNX 17) after the embeddings;
- one packed Q/K/V ``MatMul`` ([H, 3H]: one large product instead of three) feeding
  ``com.microsoft.MultiHeadAttention`` (Q/K/V bias, 2-D padding mask, ``mask_filter_value``
  = the graph's mask bias), or ``com.microsoft.Attention`` (the projection inside the op;
  ONNX Runtime's dynamic quantizer turns it into ``QAttention``);
- the residual and LayerNorm as ``Add`` + ``LayerNormalization``, twice a layer: ONNX Runtime
  1.32's ``SkipLayerNormalization`` (bias, residual and LayerNorm in one op) was slower on the
  CPU (BERT-base, seq 128, 2 threads: per-row int8 54.0 ms against 45.5, fp32 98.2 against
  94.5; ``python -m benchmarks onnx-forms``);
- ``com.microsoft.BiasGelu`` (exact erf GELU) or ``FastGelu`` (the tanh form Google's BERT uses)
  with the FFN bias folded in; ``Relu`` stays two standard ops.

Dense ``MatMul`` nodes keep the canonical names of their weights (``layer_3/output/dense``),
as the TensorFlow graph names them, so recipes select layers by the same regexes and
``layer_taps`` finds each layer's output. Fused contrib operators run on ONNX Runtime's CPU
(and CUDA) provider; NPU execution providers (NNAPI, QNN) and static QDQ tooling read
standard operators only, so those recipes keep the tf2onnx graph (``onnx_export``).
"""

from __future__ import annotations

import numpy as np

from edgebert.model.config import EMBEDDING_NAMES, MASK_BIAS, POOLER_NAMES, BertConfig, layer_names
from edgebert.runtime.runners import INPUT_NAMES

MS = "com.microsoft"
OPSET = 17
ATTENTION_OPS = ("MultiHeadAttention", "Attention")
GELU_OPS = {"gelu_erf": "BiasGelu", "gelu_tanh": "FastGelu"}


def fused_op_counts(cfg: BertConfig, attention: str = "MultiHeadAttention") -> dict[str, int]:
    """How many of each fused operator ``encoder_model`` writes for ``cfg``: a quantizer or
    optimizer that silently unfuses part of the graph changes these counts."""
    counts = {"LayerNormalization": 1 + 2 * cfg.num_layers, attention: cfg.num_layers}
    if cfg.activation in GELU_OPS:
        counts[GELU_OPS[cfg.activation]] = cfg.num_layers
    return counts


class _Builder:
    """Collects nodes and initializers; weights are taken out of ``weights`` as they are used
    when ``release`` (so a large model is held once, in its initializers)."""

    def __init__(self, weights: dict[str, np.ndarray], release: bool):
        from onnx import helper, numpy_helper

        self.helper, self.numpy_helper = helper, numpy_helper
        self.weights, self.release = weights, release
        self.nodes: list = []
        self.initializers: list = []
        self._names: set[str] = set()

    def const(self, name: str, value) -> str:
        if name not in self._names:
            self._names.add(name)
            self.initializers.append(self.numpy_helper.from_array(np.asarray(value), name))
        return name

    def take(self, name: str) -> np.ndarray:
        """The array of weight ``name`` (out of ``weights`` when releasing)."""
        return self.weights.pop(name) if self.release else self.weights[name]

    def weight(self, name: str) -> str:
        return self.const(name, np.asarray(self.take(name), np.int8 if name.endswith("_int8") else np.float32))

    def has(self, name: str) -> bool:
        return name in self.weights

    def node(self, op: str, inputs: list[str], name: str, outputs: int = 1, domain: str = "", **attrs):
        outs = [name if outputs == 1 else f"{name}:{i}" for i in range(outputs)]
        self.nodes.append(self.helper.make_node(op, inputs, outs, name=name, domain=domain or None, **attrs))
        return outs[0] if outputs == 1 else outs


def encoder_model(
    cfg: BertConfig,
    weights: dict[str, np.ndarray],
    *,
    seq_length: int | None = None,
    mask_bias: float | None = None,
    attention: str = "MultiHeadAttention",
    head: dict | None = None,
    release: bool = False,
):
    """The encoder (and optional task head) as an ``onnx.ModelProto``.

    Args:
      cfg: the architecture.
      weights: canonical weights, optionally with SmoothQuant scales (``*_smooth``: a ``Mul``
        before the dense layer) and int8 word embeddings (``*_int8`` / ``*_scale``).
      seq_length: a fixed sequence length, or None for a dynamic one (the batch is dynamic).
      mask_bias: added to the attention scores of padding (default ``MASK_BIAS``).
      attention: ``MultiHeadAttention`` (packed Q/K/V MatMul outside the op, which every
        MatMul quantizer reaches) or ``Attention`` (projection inside the op).
      head: as ``encoder_graph.head_outputs``: an embedder (``pooling`` cls or mean) or a
        classifier (``kernel``, ``bias``, ``activation``, ``output``, ``keep_encoder``).
      release: take the arrays out of ``weights`` as they become initializers.

    Returns:
      A model with int32 inputs ``INPUT_NAMES`` [batch, seq] and outputs ``pooled_output``,
      ``sequence_output`` and/or the head's output.
    """
    from onnx import TensorProto, helper

    if attention not in ATTENTION_OPS:
        raise ValueError(f"attention must be one of {ATTENTION_OPS}, got {attention!r}")
    b = _Builder(weights, release)
    ids, mask, types = INPUT_NAMES
    x = _embeddings(b, cfg, ids, types)
    bias = float(MASK_BIAS if mask_bias is None else mask_bias)
    for i in range(cfg.num_layers):
        x = _layer(b, cfg, i, x, mask, bias, attention)
    outputs = {"sequence_output": b.node("Identity", [x], "sequence_output")}
    cls = b.node("Slice", [x, b.const("c/0", [0]), b.const("c/1", [1]), b.const("c/1", [1])], "pooler/cls")
    cls = b.node("Reshape", [cls, b.const("c/flat_hidden", [-1, cfg.hidden_size])], "pooler/cls_flat")
    dense = b.node("MatMul", [cls, b.weight(POOLER_NAMES["w"])], "pooler/dense/MatMul")
    dense = b.node("Add", [dense, b.weight(POOLER_NAMES["b"])], "pooler/dense/add")
    outputs["pooled_output"] = b.node("Tanh", [dense], "pooled_output")
    if head is not None:
        task = _head(b, outputs, mask, head)
        outputs = {**outputs, **task} if head.get("keep_encoder") else task
    seq = seq_length if seq_length else "seq"
    graph_inputs = [helper.make_tensor_value_info(n, TensorProto.INT32, ["batch", seq]) for n in INPUT_NAMES]
    shapes = {"pooled_output": ["batch", cfg.hidden_size], "sequence_output": ["batch", seq, cfg.hidden_size]}
    if head is not None:
        width = cfg.hidden_size if head["task"] == "embedder" else np.asarray(head["kernel"]).shape[1]
        shapes.update({name: ["batch", width] for name in outputs if name not in shapes})
    order = ("pooled_output", "sequence_output")
    graph_outputs = [
        helper.make_tensor_value_info(name, TensorProto.FLOAT, shapes.get(name))
        for name in sorted(outputs, key=lambda n: (order.index(n) if n in order else len(order), n))
    ]
    graph = helper.make_graph(b.nodes, "bert_encoder", graph_inputs, graph_outputs)
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid(MS, 1)],
        producer_name="edgebert",
    )
    # The weights join the model last, one tensor at a time, each freed once copied in:
    # make_graph and make_model each copy every tensor they are given, which held BERT-large's
    # weights three times over at once (4.55 GB of the ONNX step's peak: NOTES.md, Memory).
    inits, b.initializers = b.initializers, []
    inits.reverse()
    while inits:
        model.graph.initializer.append(inits.pop())
    return model


def _embeddings(b: _Builder, cfg: BertConfig, ids: str, types: str) -> str:
    e = EMBEDDING_NAMES
    if b.has(e["word"]):
        word = b.node("Gather", [b.weight(e["word"]), ids], "embeddings/word_embeddings/Gather")
    else:  # int8 rows and per-row scales (quantize.embedding): only the gathered rows dequantize
        rows = b.node("Gather", [b.weight(e["word"] + "_int8"), ids], "embeddings/word_embeddings/Gather")
        scale = b.node("Gather", [b.weight(e["word"] + "_scale"), ids], "embeddings/word_embeddings/GatherScale")
        rows = b.node("Cast", [rows], "embeddings/word_embeddings/Cast", to=1)
        word = b.node("Mul", [rows, scale], "embeddings/word_embeddings/Dequantize")
    kinds = b.node("Gather", [b.weight(e["type"]), types], "embeddings/token_type_embeddings/Gather")
    length = b.node("Shape", [ids], "embeddings/position_embeddings/Shape", start=1, end=2)
    pos = b.node(
        "Slice",
        [b.weight(e["position"]), b.const("c/0", [0]), length, b.const("c/0", [0])],
        "embeddings/position_embeddings/Slice",
    )
    total = b.node("Add", [b.node("Add", [word, kinds], "embeddings/add_types"), pos], "embeddings/add_positions")
    return b.node(
        "LayerNormalization",
        [total, b.weight(e["ln_g"]), b.weight(e["ln_b"])],
        "embeddings/LayerNorm",
        axis=-1,
        epsilon=cfg.layer_norm_eps,
    )


def _layer(b: _Builder, cfg: BertConfig, i: int, x: str, mask: str, mask_bias: float, attention: str) -> str:
    n, scope = layer_names(i), f"layer_{i}/"
    H = cfg.hidden_size

    def smoothed(t: str, key: str) -> str:
        # SmoothQuant's per-channel scale; the next kernel holds its inverse ("smooth" in the
        # name tells layer_taps that the value passes through).
        if not b.has(n[key]):
            return t
        return b.node("Mul", [t, b.weight(n[key])], scope + key + "/Mul")

    def fused_weight(kind: str, parts: tuple[str, ...], axis: int) -> str:
        name = f"encoder/{scope}attention/self/query_key_value/{kind}"
        return b.const(name, np.concatenate([np.asarray(b.take(n[p]), np.float32) for p in parts], axis=axis))

    xa = smoothed(x, "qkv_smooth")
    qkv_w = fused_weight("kernel", ("q_w", "k_w", "v_w"), 1)
    qkv_b = fused_weight("bias", ("q_b", "k_b", "v_b"), 0)
    if attention == "Attention":
        ctx = b.node(
            "Attention",
            [xa, qkv_w, qkv_b, mask],
            scope + "attention/self/query_key_value/Attention",
            domain=MS,
            num_heads=cfg.num_heads,
            mask_filter_value=mask_bias,
        )
    else:
        qkv = b.node("MatMul", [xa, qkv_w], scope + "attention/self/query_key_value/MatMul")
        q, k, v = b.node("Split", [qkv, b.const("c/qkv_split", [H, H, H])], scope + "attention/self/Split", 3, axis=-1)
        ctx = b.node(
            "MultiHeadAttention",
            [q, k, v, qkv_b, mask],
            scope + "attention/self/MultiHeadAttention",
            domain=MS,
            num_heads=cfg.num_heads,
            mask_filter_value=mask_bias,
        )
    out = b.node("MatMul", [smoothed(ctx, "o_smooth"), b.weight(n["o_w"])], scope + "attention/output/dense/MatMul")
    x = _residual_norm(b, cfg, out, x, n, "o_b", "ln1", scope + "attention/output/")
    h = b.node("MatMul", [smoothed(x, "ffn_smooth"), b.weight(n["i_w"])], scope + "intermediate/dense/MatMul")
    if cfg.activation in GELU_OPS:
        h = b.node(GELU_OPS[cfg.activation], [h, b.weight(n["i_b"])], scope + "intermediate/gelu", domain=MS)
    else:
        h = b.node(
            "Relu",
            [b.node("Add", [h, b.weight(n["i_b"])], scope + "intermediate/dense/add")],
            scope + "intermediate/relu",
        )
    out = b.node("MatMul", [smoothed(h, "out_smooth"), b.weight(n["out_w"])], scope + "output/dense/MatMul")
    return _residual_norm(b, cfg, out, x, n, "out_b", "ln2", scope + "output/")


def _residual_norm(
    b: _Builder, cfg: BertConfig, out: str, residual: str, n: dict, bias: str, ln: str, scope: str
) -> str:
    # The bias Add directly after the MatMul: int8 passes fold it into their kernel's bias input.
    out = b.node("Add", [out, b.weight(n[bias])], scope + "dense/add")
    total = b.node("Add", [out, residual], scope + "residual")
    return b.node(
        "LayerNormalization",
        [total, b.weight(n[ln + "_g"]), b.weight(n[ln + "_b"])],
        scope + "LayerNorm",
        axis=-1,
        epsilon=cfg.layer_norm_eps,
    )


def _head(b: _Builder, outputs: dict[str, str], mask: str, head: dict) -> dict[str, str]:
    """``encoder_graph.head_outputs`` in ONNX operators."""
    if head.get("pooling", "cls") == "cls":
        feats = outputs["pooled_output"]
    else:
        m = b.node("Cast", [b.node("Unsqueeze", [mask, b.const("c/-1", [-1])], "head/mask3")], "head/maskf", to=1)
        total = b.node(
            "ReduceSum",
            [b.node("Mul", [outputs["sequence_output"], m], "head/masked"), b.const("c/1", [1])],
            "head/sum",
            keepdims=0,
        )
        count = b.node("ReduceSum", [m, b.const("c/1", [1])], "head/count", keepdims=0)
        count = b.node("Max", [count, b.const("c/one_f", np.float32(1.0))], "head/count_min1")
        feats = b.node("Div", [total, count], "head/mean")
    if head["task"] == "embedder":
        return {"embedding": b.node("Identity", [feats], "embedding")}
    kernel = b.const("classifier/kernel", np.asarray(head["kernel"], np.float32))
    logits = b.node(
        "Add",
        [
            b.node("MatMul", [feats, kernel], "classifier/MatMul"),
            b.const("classifier/bias", np.asarray(head["bias"], np.float32)),
        ],
        "classifier/logits",
    )
    name = head.get("output", "probability")
    act = head.get("activation", "softmax")
    op = {"sigmoid": "Sigmoid", "none": "Identity"}.get(act, "Softmax")
    return {name: b.node(op, [logits], name, **({"axis": -1} if op == "Softmax" else {}))}
