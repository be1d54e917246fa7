"""Quantization recipes, kept as data in ``recipes.json``."""

from __future__ import annotations

import dataclasses
import json
from functools import lru_cache
from importlib import resources

from edgebert.errors import EdgebertError

DEFAULT_FLOAT = "fp32"
DEFAULT_INT8 = "wi8_afp32"  # the fastest recipe that meets its thresholds on both formats


@dataclasses.dataclass(frozen=True)
class Recipe:
    name: str
    description: str
    formats: tuple[str, ...]
    int8: bool
    thresholds: dict
    smoothing: dict | None = None
    calibration: dict | None = None
    graph: dict | None = None  # graph spelling for this recipe (e.g. mask_bias)
    tflite: dict | None = None  # TFLite-specific settings
    onnx: dict | None = None  # ONNX-specific settings

    def for_format(self, fmt: str) -> dict:
        return dict(getattr(self, fmt) or {})

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


@lru_cache(maxsize=1)
def all_recipes() -> dict[str, Recipe]:
    raw = json.loads(resources.files("edgebert.quantize").joinpath("recipes.json").read_text())["recipes"]
    return {name: Recipe(name=name, formats=tuple(r.pop("formats")), **r) for name, r in
            ((n, dict(v)) for n, v in raw.items())}


def get(name: str) -> Recipe:
    recipes = all_recipes()
    if name not in recipes:
        raise EdgebertError(f"unknown recipe '{name}'", f"choose one of: {', '.join(recipes)}")
    return recipes[name]
