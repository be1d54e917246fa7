"""BERT hyper-parameters and the canonical weight names every source is read into."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

# Activations by the names that checkpoints use. Google's BERT (google-research modeling.py,
# Model Garden) calls the tanh approximation "gelu"; Hugging Face calls exact erf "gelu".
ACTIVATIONS = ("gelu_tanh", "gelu_erf", "relu")

# Added to the attention scores of padding. TF Hub's encoders use -10000; in float any
# value below about -100 gives the same softmax (exp(-100) is 4e-44), but an int8 tensor
# that must hold -10000 next to scores of +-20 has no precision left for the scores.
MASK_BIAS = -10000.0


@dataclasses.dataclass(frozen=True)
class BertConfig:
    vocab_size: int
    hidden_size: int
    num_layers: int
    num_heads: int
    intermediate_size: int
    max_position: int = 512
    type_vocab_size: int = 2
    activation: str = "gelu_tanh"
    layer_norm_eps: float = 1e-12

    def __post_init__(self):
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}, got {self.activation!r}")
        if self.hidden_size % self.num_heads:
            raise ValueError(f"hidden_size {self.hidden_size} is not divisible by num_heads {self.num_heads}")

    @property
    def head_size(self) -> int:
        return self.hidden_size // self.num_heads

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> BertConfig:
        return cls(**json.loads(text))

    @classmethod
    def from_google_json(cls, path: Path) -> BertConfig:
        """Reads google-research/bert's ``bert_config.json``."""
        c = json.loads(Path(path).read_text())
        act = {"gelu": "gelu_tanh", "relu": "relu"}.get(c.get("hidden_act", "gelu"))
        if act is None:
            raise ValueError(f"unsupported hidden_act {c.get('hidden_act')!r} in {path}")
        return cls._from_keys(c, act)

    @classmethod
    def from_hf_json(cls, path: Path) -> BertConfig:
        """Reads a Hugging Face ``config.json`` of a BERT-architecture model."""
        c = json.loads(Path(path).read_text())
        act = {"gelu": "gelu_erf", "gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "relu": "relu"}.get(
            c.get("hidden_act", "gelu")
        )
        if act is None:
            raise ValueError(f"unsupported hidden_act {c.get('hidden_act')!r} in {path}")
        return cls._from_keys(c, act, layer_norm_eps=c.get("layer_norm_eps", 1e-12))

    @classmethod
    def _from_keys(cls, c: dict, activation: str, **extra) -> BertConfig:
        """From the key names google-research's and Hugging Face's configs share."""
        return cls(
            vocab_size=c["vocab_size"],
            hidden_size=c["hidden_size"],
            num_layers=c["num_hidden_layers"],
            num_heads=c["num_attention_heads"],
            intermediate_size=c["intermediate_size"],
            max_position=c.get("max_position_embeddings", 512),
            type_vocab_size=c.get("type_vocab_size", 2),
            activation=activation,
            **extra,
        )


def layer_names(i: int) -> dict[str, str]:
    """Canonical names of layer ``i`` (google-research/bert names without the ``bert/``)."""
    p = f"encoder/layer_{i}/"
    return {
        "q_w": p + "attention/self/query/kernel",
        "q_b": p + "attention/self/query/bias",
        "k_w": p + "attention/self/key/kernel",
        "k_b": p + "attention/self/key/bias",
        "v_w": p + "attention/self/value/kernel",
        "v_b": p + "attention/self/value/bias",
        "o_w": p + "attention/output/dense/kernel",
        "o_b": p + "attention/output/dense/bias",
        "ln1_g": p + "attention/output/LayerNorm/gamma",
        "ln1_b": p + "attention/output/LayerNorm/beta",
        "i_w": p + "intermediate/dense/kernel",
        "i_b": p + "intermediate/dense/bias",
        "out_w": p + "output/dense/kernel",
        "out_b": p + "output/dense/bias",
        "ln2_g": p + "output/LayerNorm/gamma",
        "ln2_b": p + "output/LayerNorm/beta",
        # Optional SmoothQuant activation scales (set by edgebert.quantize, not checkpoints).
        "qkv_smooth": p + "attention/self/qkv_smooth",
        "o_smooth": p + "attention/output/o_smooth",
        "ffn_smooth": p + "intermediate/ffn_smooth",
        "out_smooth": p + "output/out_smooth",
    }


EMBEDDING_NAMES = {
    "word": "embeddings/word_embeddings",
    "position": "embeddings/position_embeddings",
    "type": "embeddings/token_type_embeddings",
    "ln_g": "embeddings/LayerNorm/gamma",
    "ln_b": "embeddings/LayerNorm/beta",
}
POOLER_NAMES = {"w": "pooler/dense/kernel", "b": "pooler/dense/bias"}


def expected_shapes(cfg: BertConfig) -> dict[str, tuple[int, ...]]:
    """Every canonical weight name with its shape (dense kernels are [in, out])."""
    H, I = cfg.hidden_size, cfg.intermediate_size
    shapes = {
        EMBEDDING_NAMES["word"]: (cfg.vocab_size, H),
        EMBEDDING_NAMES["position"]: (cfg.max_position, H),
        EMBEDDING_NAMES["type"]: (cfg.type_vocab_size, H),
        EMBEDDING_NAMES["ln_g"]: (H,),
        EMBEDDING_NAMES["ln_b"]: (H,),
        POOLER_NAMES["w"]: (H, H),
        POOLER_NAMES["b"]: (H,),
    }
    for i in range(cfg.num_layers):
        n = layer_names(i)
        for k in ("q", "k", "v", "o"):
            shapes[n[k + "_w"]] = (H, H)
            shapes[n[k + "_b"]] = (H,)
        for k in ("ln1", "ln2"):
            shapes[n[k + "_g"]] = (H,)
            shapes[n[k + "_b"]] = (H,)
        shapes[n["i_w"]], shapes[n["i_b"]] = (H, I), (I,)
        shapes[n["out_w"]], shapes[n["out_b"]] = (I, H), (H,)
    return shapes


def check_weights(cfg: BertConfig, weights: dict, where: str) -> None:
    """Raises ValueError naming the first missing or mis-shaped weight."""
    for name, shape in expected_shapes(cfg).items():
        if name not in weights:
            raise ValueError(f"{where} has no weight '{name}'")
        got = tuple(weights[name].shape)
        if got != shape:
            raise ValueError(f"{where}: weight '{name}' has shape {got}, expected {shape}")
