"""Quantization recipes, kept as data in ``recipes.json``.

A recipe is read as data end to end: ``smoothing`` and ``calibration`` by the conversion
worker, ``graph`` by the graph builders, ``thresholds`` by the export gate, and each format's
section (``tflite``, ``onnx``) by that format's method table (``tflite_quant.METHODS``,
``onnx_quant.METHODS``), which maps the section's ``method`` to the function applying it. A key
that nothing reads is refused when the recipes load, so the file cannot carry dead settings.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable
from functools import lru_cache
from importlib import resources
from pathlib import Path

from edgebert.errors import EdgebertError

DEFAULT_FLOAT = "fp32"
DEFAULT_INT8 = "wi8_afp32"  # the fastest recipe that meets its thresholds on both formats
INTEGER_INT8 = "wi8_ai8i16"  # integer-only (every op int8 / int16): for NPU-style delegates
A16W8 = "wi8_ai16"  # integer-only, every op int16 activations: what a fine-tuned classifier needs
INT8_KINDS = {"dynamic": DEFAULT_INT8, "integer": INTEGER_INT8, "a16w8": A16W8}


def android_recipe(int8: bool | str) -> str:
    """The recipe of ``edgebert android``'s ``--int8``: False, True, or a key of ``INT8_KINDS``."""
    if int8 in (False, None):
        return DEFAULT_FLOAT
    if int8 is True:
        return DEFAULT_INT8
    if int8 not in INT8_KINDS:
        raise EdgebertError(f"--int8 {int8!r} is not a kind of int8", f"use one of: {', '.join(INT8_KINDS)}")
    return INT8_KINDS[int8]


# The keys each section may hold, and who reads them.
SECTION_KEYS = {
    "thresholds": {"cosine_mean", "cosine_min", "agreement_min", "max_abs"},  # metrics.gate / gate_scores
    "smoothing": {"alpha", "layers", "calibration_sentences"},  # quantize.smoothquant (SmoothQuant), via the worker
    "rounding": {"method", "damp", "sentences"},  # quantize.gptq (GPTQ), via the worker
    "calibration": {"method", "sentences", "percentile"},  # the worker; onnx_quant's qdq_static
    "graph": {"mask_bias", "layer_norm_cls_apart"},  # the encoder graph builders
    # Integer recipes: op groups (regex on op name scopes) with int16 activations, and lookup
    # tables kept int8; read by tflite_quant's ai_edge_quantizer and onnx_quant's qdq_mixed.
    "precision": {"int16_select", "int8_tables"},
}
# Keys of a format section that every method accepts: the method itself, and the int8 word
# embedding table that the worker applies before conversion (quantize.embedding).
FORMAT_KEYS = {"method", "embedding"}
EMBEDDINGS = {"int8_per_row"}


@dataclasses.dataclass(frozen=True)
class Method:
    """How one format applies a recipe section.

    Attributes:
      apply: the function (format-specific signature: see the format's module).
      params: the section keys it reads, besides ``FORMAT_KEYS``.
      required: those of ``params`` it cannot do without.
      after: TFLite only: a pass over the converted flatbuffer.
      graphs: ONNX only: the encoder graphs the method can quantize (``onnx_quant.GRAPHS``),
        the one it gets by default first.
      reads_external_data: ONNX only: the method reads an fp32 file whose weights lie in a data
        file beside it, so the converter writes that file with no serialized copy of the weights.
    """

    apply: Callable
    params: tuple[str, ...] = ()
    required: tuple[str, ...] = ()
    after: Callable | None = None
    graphs: tuple[str, ...] = ()
    reads_external_data: bool = False


@dataclasses.dataclass(frozen=True)
class Recipe:
    name: str
    description: str
    formats: tuple[str, ...]
    int8: bool
    thresholds: dict
    smoothing: dict | None = None
    rounding: dict | None = None  # how int8 weights are rounded (GPTQ), before both converters
    calibration: dict | None = None
    graph: dict | None = None  # graph spelling for this recipe (e.g. mask_bias)
    precision: dict | None = None  # integer recipes: which op groups keep int16 activations
    tflite: dict | None = None  # the TFLite method and its parameters
    onnx: dict | None = None  # the ONNX method and its parameters
    path: str | None = None  # a recipe read from a file (``from_file``); None: recipes.json's

    @property
    def ref(self) -> str:
        """What ``get`` takes to find this recipe again (in a worker process): name or file."""
        return self.path or self.name

    def for_format(self, fmt: str) -> dict:
        return dict(getattr(self, fmt) or {})

    def to_json(self) -> dict:
        """The recipe as data (the manifest's ``recipe``); ``path`` only for a recipe file."""
        data = dataclasses.asdict(self)
        if data["path"] is None:
            del data["path"]
        return data


def method_of(recipe: Recipe, fmt: str, methods: dict[str, Method]) -> tuple[Method, dict]:
    """The method ``recipe`` names for ``fmt`` and the section's parameters, checked: an
    unknown method, a key the method does not read, or a missing parameter is an error."""
    section = recipe.for_format(fmt)
    name = section.get("method")
    if fmt not in recipe.formats:
        raise ValueError(f"recipe {recipe.name} has no {fmt} form")
    if name not in methods:
        raise ValueError(f"recipe {recipe.name}: {fmt} method {name!r} is not one of {', '.join(methods)}")
    method = methods[name]
    unread = set(section) - FORMAT_KEYS - set(method.params)
    missing = set(method.required) - set(section)
    if unread or missing:
        raise ValueError(
            f"recipe {recipe.name}: {fmt} method {name} "
            + (f"reads no {', '.join(sorted(unread))}" if unread else "")
            + ("; " if unread and missing else "")
            + (f"needs {', '.join(sorted(missing))}" if missing else "")
        )
    if section.get("embedding", "int8_per_row") not in EMBEDDINGS:
        raise ValueError(f"recipe {recipe.name}: {fmt} embedding {section['embedding']!r} is not one of {EMBEDDINGS}")
    return method, section


ROUNDINGS = {"gptq"}  # quantize.gptq


def _check_sections(name: str, raw: dict) -> None:
    rounding = raw.get("rounding")
    if rounding and (rounding.get("method") not in ROUNDINGS or {"damp", "sentences"} - set(rounding)):
        raise ValueError(f"recipe {name}: rounding needs method (one of {sorted(ROUNDINGS)}), damp and sentences")
    for section, keys in SECTION_KEYS.items():
        unread = set(raw.get(section) or {}) - keys
        if unread:
            raise ValueError(
                f"recipe {name}: {section} keys {sorted(unread)} are read by nothing (known: {sorted(keys)})"
            )


def _build(name: str, raw: dict, path: str | None = None) -> Recipe:
    """A ``Recipe`` from its data (a recipes.json entry or a recipe file's), sections checked."""
    _check_sections(name, raw)
    fields = dict(raw)
    return Recipe(name=name, path=path, formats=tuple(fields.pop("formats")), **fields)


@lru_cache(maxsize=1)
def all_recipes() -> dict[str, Recipe]:
    raw = json.loads(resources.files("edgebert.quantize").joinpath("recipes.json").read_text())["recipes"]
    return {name: _build(name, r) for name, r in raw.items()}


def get(name: str) -> Recipe:
    """A recipe of ``recipes.json`` by name, or one read from a ``.json`` file (``from_file``)."""
    recipes = all_recipes()
    if name in recipes:
        return recipes[name]
    if name.endswith(".json") or os.sep in name:
        return from_file(name)
    raise EdgebertError(
        f"unknown recipe '{name}'", f"choose one of: {', '.join(recipes)}, or give a recipe file (NAME.json)"
    )


FIELDS = {f.name for f in dataclasses.fields(Recipe)} - {"name", "path"}
REQUIRED = {f.name for f in dataclasses.fields(Recipe) if f.default is dataclasses.MISSING} - {"name"}


def from_file(path: str | os.PathLike) -> Recipe:
    """A recipe written as data in a file of its own: ``{"name": ..., "description": ...,
    "formats": [...], "int8": ..., "thresholds": {...}, <sections as in recipes.json>}``, checked
    as the built-in ones are (sections, each format's method and its keys). ``edgebert recipes
    --show NAME`` prints a built-in recipe in this form, to start from."""
    from edgebert.quantize import onnx_quant, tflite_quant

    p = Path(path)
    if not p.is_file():
        raise EdgebertError(f"recipe file {p} not found", "give the path of a .json recipe, or a recipe name")
    try:
        raw = json.loads(p.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise EdgebertError(
            f"recipe file {p} is not JSON ({e})", "fix the file (edgebert recipes --show fp32)"
        ) from None
    if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
        raise EdgebertError(f'recipe file {p} has no "name"', "start from `edgebert recipes --show wi8_ai8i16`")
    name = raw.pop("name")
    raw.pop("path", None)
    if name in all_recipes():
        raise EdgebertError(f"recipe file {p} reuses the built-in name {name}", "give the recipe a name of its own")
    missing = REQUIRED - set(raw)
    unknown = set(raw) - FIELDS
    if missing or unknown:
        raise EdgebertError(
            f"recipe file {p}: "
            + "; ".join(
                ([f"missing {', '.join(sorted(missing))}"] if missing else [])
                + ([f"unknown fields {', '.join(sorted(unknown))}"] if unknown else [])
            ),
            f"a recipe holds: {', '.join(sorted(FIELDS))}",
        )
    try:
        recipe = _build(name, raw, str(p.resolve()))
        for fmt, methods in (("tflite", tflite_quant.METHODS), ("onnx", onnx_quant.METHODS)):
            if fmt in recipe.formats:
                method_of(recipe, fmt, methods)
    except ValueError as e:
        raise EdgebertError(f"recipe file {p}: {e}", "see `edgebert recipes --show NAME` for a valid one") from None
    return recipe
