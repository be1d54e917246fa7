"""One conversion-friendly BERT encoder as a plain ``tf.Module``.

Used for the reference SavedModel and (later) for every TFLite / ONNX conversion. The graph
is spelled the way the converters and the GPU delegate need (shared NOTES.md):
- the attention mask is ``reshape(mask, [B, 1, 1, S])``, not ``mask[:, None, None, :]``
  (StridedSlice breaks dynamic-shape TFLite conversion);
- word embeddings are a 1-D gather; token-type embeddings are arithmetic on the two rows
  (``one_hot(type_ids) @ table`` for larger tables): a 2-D GATHER does not run on the GPU
  delegate, a 1-D gather of the 2-row type table runs there but wrongly, and ONE_HOT has
  no int16 kernel;
- [CLS] is ``reshape(slice(x, [0, 0, 0], [-1, 1, -1]), [B, H])`` (no shrink_axis_mask);
- LayerNorm squares ``d * d`` (``squared_difference`` ruins full-int8 accuracy).

``graph_form="classic"`` spells the three lookups the usual way (2-D gathers, ``x[:, 0, :]``),
kept to measure that the GPU form costs nothing on the CPU and for the GPU check's contrast.
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from edgebert.model.config import EMBEDDING_NAMES, MASK_BIAS, POOLER_NAMES, BertConfig, expected_shapes, layer_names
from edgebert.runtime.runners import INPUT_NAMES  # the TF Hub encoder inputs, defined once (runtime side)

GRAPH_FORMS = ("gpu", "classic")


def _gelu_tanh(x):
    return 0.5 * x * (1.0 + tf.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x * x * x)))


def _gelu_erf_onnx(x):
    # The spelling ONNX Runtime fuses (tf.nn.gelu lowers to Erfc, which tf2onnx lacks).
    return x * (0.5 * (1.0 + tf.math.erf(x * 0.7071067811865476)))


def activation_fn(kind: str, target: str = "tflite"):
    """The activation spelled for ``target`` ("tflite", "onnx" or "savedmodel")."""
    if kind == "gelu_tanh":
        return _gelu_tanh
    if kind == "gelu_erf":
        # tf.nn.gelu becomes TFLite's builtin GELU; ONNX needs the Erf spelling.
        return _gelu_erf_onnx if target == "onnx" else (lambda x: tf.nn.gelu(x, approximate=False))
    return tf.nn.relu


def _scope(weight: str) -> str:
    """The op scope of a weight's layer: ``encoder/layer_3/output/dense/kernel`` -> ``layer_3/output/dense``."""
    return weight.rsplit("/", 1)[0].replace("encoder/", "")


def graph_weights(cfg: BertConfig, weights: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The weights the encoder graph reads, in its dtypes (int8 tables, float32 elsewhere)."""
    wanted = expected_shapes(cfg)
    return {
        k: np.asarray(v, np.int8 if k.endswith("_int8") else np.float32)
        for k, v in weights.items()
        if k in wanted or k.endswith(("_smooth", "_int8", "_scale"))
    }


class BertEncoderModule(tf.Module):
    """BERT encoder with the TF Hub encoder interface.

    ``module(inputs)`` takes a dict of int32 ``[batch, seq]`` tensors named as in
    ``INPUT_NAMES`` and returns ``sequence_output``, ``pooled_output``, ``default`` and
    ``encoder_outputs`` (a list), like a TF Hub BERT encoder.
    """

    def __init__(
        self,
        cfg: BertConfig,
        weights: dict[str, np.ndarray],
        name: str = "bert",
        target: str = "tflite",
        graph_form: str = "gpu",
        trainable: bool = False,
    ):
        super().__init__(name=name)
        if graph_form not in GRAPH_FORMS:
            raise ValueError(f"graph_form must be one of {GRAPH_FORMS}, got {graph_form!r}")
        self.graph_form = graph_form
        self.cfg = cfg
        # Variables keep the canonical names, so a reference reads back by name.
        self.weights = {
            k: tf.Variable(
                v, trainable=trainable and not k.endswith(("_int8", "_scale", "_smooth")), name=k.replace("/", "__")
            )
            for k, v in graph_weights(cfg, weights).items()
        }
        self._act = activation_fn(cfg.activation, target)
        self.mask_bias = MASK_BIAS
        # LayerNorm of [CLS]'s row apart from the other rows (same values in float): BERT's
        # [CLS] carries massive activations (fine-tuned default model, FFN-output LayerNorms of
        # layers 0-3: variance 15-130 where every other token's is <= 1.2), and with one int16
        # range per tensor the other tokens' squares round to a 1.5-wide step and RSQRT's
        # 513-entry table interpolates them coarsely (their 1/std off by up to 15%).
        self.layer_norm_cls_apart = False

    def set_graph_options(self, options: dict | None) -> None:
        """A recipe's ``graph`` section: ``mask_bias``, ``layer_norm_cls_apart``."""
        options = options or {}
        self.mask_bias = options.get("mask_bias", self.mask_bias)
        self.layer_norm_cls_apart = bool(options.get("layer_norm_cls_apart", False))

    def _ln(self, x, g, b):
        # Scoped by the gamma's name ("layer_3/output/LayerNorm"), like every op group below,
        # so a quantization recipe can pick LayerNorms, residual sums, softmax or GELU by regex.
        with tf.name_scope(_scope(g)):
            if not self.layer_norm_cls_apart:
                return self._normalize(x, g, b)
            # tf.slice, not x[:, :1]: StridedSlice breaks dynamic-shape TFLite
            cls = tf.slice(x, [0, 0, 0], [-1, 1, -1])
            rest = tf.slice(x, [0, 1, 0], [-1, -1, -1])
            with tf.name_scope("cls"):
                cls = self._normalize(cls, g, b)
            with tf.name_scope("tokens"):
                rest = self._normalize(rest, g, b)
            return tf.concat([cls, rest], axis=1)

    def _normalize(self, x, g, b):
        mean = tf.reduce_mean(x, axis=-1, keepdims=True)
        d = x - mean
        var = tf.reduce_mean(d * d, axis=-1, keepdims=True)
        return d * tf.math.rsqrt(var + self.cfg.layer_norm_eps) * self.weights[g] + self.weights[b]

    def _smooth(self, x, name):
        # Optional per-channel activation scale (SmoothQuant): the following kernels hold
        # its inverse, so the float result is unchanged but int8 activations lose less.
        if name not in self.weights:
            return x
        with tf.name_scope(name.replace("encoder/", "")):
            return x * self.weights[name]

    def _dense(self, x, w, b):
        # The name scope (the weight's canonical name) names the TFLite / ONNX op, so
        # quantization recipes can select layers by regex, e.g. "layer_3/output/dense".
        with tf.name_scope(_scope(w)):
            return tf.matmul(x, self.weights[w]) + self.weights[b]

    def _type_embeddings(self, type_ids):
        table = self.weights[EMBEDDING_NAMES["type"]]
        with tf.name_scope("embeddings/token_type_embeddings"):
            if self.graph_form == "classic":
                return tf.gather(table, type_ids)
            if self.cfg.type_vocab_size == 2:
                # row0 + t * (row1 - row0): plain arithmetic runs in every quantization mode
                # (ONE_HOT has no int16 kernel) and on the GPU delegate (no GATHER).
                # tf.slice, not table[0]: StridedSlice breaks dynamic-shape TFLite.
                row0, row1 = tf.slice(table, [0, 0], [1, -1]), tf.slice(table, [1, 0], [1, -1])
                # reshape, not expand_dims: the GPU delegates have no EXPAND_DIMS kernel.
                t = tf.reshape(tf.cast(type_ids, tf.float32), [self._B, self._S, 1])
                return row0 + t * (row1 - row0)
            return tf.matmul(tf.one_hot(type_ids, self.cfg.type_vocab_size, dtype=tf.float32), table)

    def _positions(self, ids, S):
        table = self.weights[EMBEDDING_NAMES["position"]]
        with tf.name_scope("embeddings/position_embeddings"):
            if not (isinstance(S, int) and S < 0):
                return tf.slice(table, [0, 0], [S, self.cfg.hidden_size])
            # Length unknown without a SHAPE op: number the first row's positions instead.
            first = tf.reshape(tf.slice(ids, [0, 0], [1, -1]), [-1])
            steps = tf.cast(first, tf.float32) * 0.0 + 1.0
            return tf.gather(table, tf.cast(tf.cumsum(steps), tf.int32) - 1)

    def encode(self, ids, mask, type_ids):
        cfg, W = self.cfg, self.weights
        # Static dimensions stay Python ints, so a fixed-shape graph has no shape ops at all
        # (SHAPE and shape-vector slices have no GPU kernels). With a static batch and a dynamic
        # length, reshapes say -1 for the length and positions come from a cumulative sum.
        B = ids.shape[0] if ids.shape[0] is not None else tf.shape(ids)[0]
        S_static = ids.shape[1]
        S = S_static if S_static is not None else (-1 if ids.shape[0] is not None else tf.shape(ids)[1])
        self._B, self._S = B, S
        H, nh, dh = cfg.hidden_size, cfg.num_heads, cfg.head_size
        e = EMBEDDING_NAMES
        with tf.name_scope("embeddings/word_embeddings"):
            flat_ids = tf.reshape(ids, [-1]) if self.graph_form == "gpu" else ids
            if e["word"] in W:
                word = tf.gather(W[e["word"]], flat_ids)
            else:  # int8 rows and per-row scales (edgebert.quantize.embedding)
                word = tf.cast(tf.gather(W[e["word"] + "_int8"], flat_ids), tf.float32) * tf.gather(
                    W[e["word"] + "_scale"], flat_ids
                )
            word = tf.reshape(word, [B, S, H])
        types = self._type_embeddings(type_ids)
        pos = self._positions(ids, S)
        with tf.name_scope("embeddings/sum"):
            x = word + types + pos[None]
        x = self._ln(x, e["ln_g"], e["ln_b"])
        with tf.name_scope("attention_mask"):
            mask_bias = (1.0 - tf.cast(tf.reshape(mask, [B, 1, 1, S]), tf.float32)) * self.mask_bias
        scale = 1.0 / math.sqrt(dh)
        outputs = []
        for i in range(cfg.num_layers):
            n = layer_names(i)

            def heads(t):
                return tf.transpose(tf.reshape(t, [B, S, nh, dh]), [0, 2, 1, 3])

            xa = self._smooth(x, n["qkv_smooth"])
            q = heads(self._dense(xa, n["q_w"], n["q_b"]))
            k = heads(self._dense(xa, n["k_w"], n["k_b"]))
            v = heads(self._dense(xa, n["v_w"], n["v_b"]))
            att = f"layer_{i}/attention/self/"
            with tf.name_scope(att + "scores"):
                scores = tf.matmul(q * scale, k, transpose_b=True) + mask_bias
            with tf.name_scope(att + "softmax"):
                probs = tf.nn.softmax(scores, axis=-1)
            with tf.name_scope(att + "context"):
                ctx = tf.reshape(tf.transpose(tf.matmul(probs, v), [0, 2, 1, 3]), [B, S, H])
            attn = self._dense(self._smooth(ctx, n["o_smooth"]), n["o_w"], n["o_b"])
            with tf.name_scope(f"layer_{i}/attention/output/residual"):
                attn = attn + x
            x = self._ln(attn, n["ln1_g"], n["ln1_b"])
            h = self._dense(self._smooth(x, n["ffn_smooth"]), n["i_w"], n["i_b"])
            with tf.name_scope(f"layer_{i}/intermediate/activation"):
                h = self._act(h)
            out = self._dense(self._smooth(h, n["out_smooth"]), n["out_w"], n["out_b"])
            with tf.name_scope(f"layer_{i}/output/residual"):
                out = out + x
            x = self._ln(out, n["ln2_g"], n["ln2_b"])
            outputs.append(x)
        with tf.name_scope("pooler/cls"):
            if self.graph_form == "classic":
                cls = x[:, 0, :]
            else:
                cls = tf.reshape(tf.slice(x, [0, 0, 0], [-1, 1, -1]), [B, H])
        pooled = self._dense(cls, POOLER_NAMES["w"], POOLER_NAMES["b"])
        with tf.name_scope("pooler/activation"):
            pooled = tf.tanh(pooled)
        return {"sequence_output": x, "pooled_output": pooled, "default": pooled, "encoder_outputs": outputs}

    def bind(self, weights: dict) -> None:
        """Reads the weights from ``weights`` (tensors, e.g. a traced function's inputs) instead
        of the module's variables: the same graph, with every weight a graph input."""
        self.weights = dict(weights)

    @tf.function(input_signature=[{n: tf.TensorSpec([None, None], tf.int32, name=n) for n in INPUT_NAMES}])
    def __call__(self, inputs):
        return self.encode(inputs["input_word_ids"], inputs["input_mask"], inputs["input_type_ids"])


def flat_outputs(out: dict) -> dict:
    """The serving-signature form: ``encoder_outputs`` flattened to ``encoder_outputs_i``."""
    flat = {k: v for k, v in out.items() if k != "encoder_outputs"}
    for i, t in enumerate(out["encoder_outputs"]):
        flat[f"encoder_outputs_{i}"] = t
    return flat


def head_outputs(out: dict, mask, head: dict) -> dict:
    """Task outputs on top of the encoder.

    ``embedder``: ``embedding`` = the pooled output (``pooling="cls"``) or the mean of the
    sequence output over real tokens (``"mean"``). ``classifier``: ``features @ kernel + bias``
    through ``activation`` (``softmax`` (default), ``sigmoid`` or ``none``), named
    ``head["output"]`` (default ``probability``, what MediaPipe's TextClassifier reads).
    """
    seq = out["sequence_output"]
    if head.get("pooling", "cls") == "cls":
        feats = out["pooled_output"]
    else:
        with tf.name_scope("head/mean_pooling"):
            shape = tf.shape(seq) if seq.shape[0] is None or seq.shape[1] is None else seq.shape
            m = tf.reshape(tf.cast(mask, tf.float32), [shape[0], shape[1], 1])
            feats = tf.reduce_sum(seq * m, axis=1) / tf.maximum(tf.reduce_sum(m, axis=1), 1.0)
    if head["task"] == "embedder":
        return {"embedding": feats}
    with tf.name_scope("classifier"):
        logits = tf.matmul(feats, tf.constant(np.asarray(head["kernel"], np.float32))) + tf.constant(
            np.asarray(head["bias"], np.float32)
        )
    act = head.get("activation", "softmax")
    scores = tf.sigmoid(logits) if act == "sigmoid" else logits if act == "none" else tf.nn.softmax(logits, axis=-1)
    return {head.get("output", "probability"): scores}


def serving_outputs(module: BertEncoderModule, ids, mask, type_ids, head: dict | None = None) -> dict:
    """What an exported model returns: the two encoder outputs, the head's output instead of
    them (Android assets), or both (``head["keep_encoder"]``: fine-tuned classifier bundles)."""
    out = module.encode(ids, mask, type_ids)
    encoder = {"pooled_output": out["pooled_output"], "sequence_output": out["sequence_output"]}
    if head is None:
        return encoder
    task = head_outputs(out, mask, head)
    return {**encoder, **task} if head.get("keep_encoder") else task
