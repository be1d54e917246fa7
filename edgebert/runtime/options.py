"""The backend-specific options of ``edgebert.load``, one frozen dataclass per backend, and the
settings every runner of a model opens with.

    edgebert.load("out/demo", delegate="gpu", gpu=edgebert.GpuOptions(enforce_f32=True))

An options object names the backend it belongs to, so a misplaced one is an error that says so
(a ``GpuOptions`` with ``delegate="cpu"``); with ``backend="auto"`` options for both file formats
may be given, and those of the format that does not run are ignored (a TFLite-only setting that
cannot apply, such as a weight-cache file with ``backend="onnx"``, is still an error). The keywords these objects
replace (``weight_cache=``, ``delegate_library=``, ``gpu_enforce_f32=``, ``strict=``,
``exact_int8=``) still work for one release, with a ``DeprecationWarning``.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import warnings
from typing import Any, TypedDict

from edgebert.errors import EdgebertError


@dataclasses.dataclass(frozen=True)
class TfliteOptions:
    """Options of the TFLite backend.

    Attributes:
      weight_cache: on the CPU: XNNPACK's packed weights in a cache file, read by LiteRT's
        CompiledModel (``"auto"``: in the edgebert cache; a file path; ``":memory"``; ``"off"`` or
        None: the LiteRT Interpreter). See ``edgebert.load``.
      delegate_library: a TFLite delegate ``.so`` (path or name) for ``load_delegate``.
    """

    weight_cache: str | os.PathLike | None = "auto"
    delegate_library: str | None = None


@dataclasses.dataclass(frozen=True)
class GpuOptions:
    """Options of ``delegate="gpu"``.

    Attributes:
      enforce_f32: compute in fp32 (LiteRT's default may use fp16).
      strict: refuse a model that the GPU cannot take whole (else the CPU runs the ops it lacks).
    """

    enforce_f32: bool = False
    strict: bool = False


@dataclasses.dataclass(frozen=True)
class OnnxOptions:
    """Options of the ONNX backend.

    Attributes:
      exact_int8: on the CPU provider: None (default) re-signs the int8 weights for ONNX
        Runtime's u8 x u8 kernel where this CPU's u8 x s8 kernel saturates (x86 without VNNI);
        True always; False never.
    """

    exact_int8: bool | None = None


class LoadKeywords(TypedDict, total=False):
    """The keyword-only arguments of ``edgebert.load`` (and ``EdgeModel``), for type checkers."""

    fallback: bool
    pool_size: int
    batch_size: int
    fast_tokenizer: bool
    tflite: TfliteOptions | None
    gpu: GpuOptions | None
    onnx: OnnxOptions | None
    # Deprecated for one release: the fields of the option objects above.
    weight_cache: str | os.PathLike | None
    delegate_library: str | None
    gpu_enforce_f32: bool
    strict: bool
    exact_int8: bool | None


@dataclasses.dataclass(frozen=True)
class RunnerSettings:
    """What every runner of one model opens with (``runners.open_runner``'s keywords)."""

    num_threads: int | None
    hidden_size: int
    output_widths: dict[str, int]
    delegate_library: str | None = None
    strict: bool = False
    gpu_enforce_f32: bool = False
    weight_cache: str | None = None
    exact_int8: bool | None = None

    def as_kwargs(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


# Deprecated keyword of load() -> (options argument, field of its dataclass).
DEPRECATED_KEYWORDS: dict[str, tuple[str, str]] = {
    "weight_cache": ("tflite", "weight_cache"),
    "delegate_library": ("tflite", "delegate_library"),
    "gpu_enforce_f32": ("gpu", "enforce_f32"),
    "strict": ("gpu", "strict"),
    "exact_int8": ("onnx", "exact_int8"),
}
OPTION_TYPES: dict[str, type] = {"tflite": TfliteOptions, "gpu": GpuOptions, "onnx": OnnxOptions}


def from_deprecated_keywords(keywords: dict[str, Any], given: dict[str, Any], caller: str) -> dict[str, Any]:
    """The options objects ``given`` (``{"tflite": ..., "gpu": ..., "onnx": ...}``) with the old
    keywords folded in, each warned about once at the caller's line; an unknown keyword is a
    TypeError, as Python raises it, and an old keyword beside the object that replaces it an
    EdgebertError."""
    unknown = [k for k in keywords if k not in DEPRECATED_KEYWORDS]
    if unknown:
        raise TypeError(f"{caller}() got an unexpected keyword argument {unknown[0]!r}")
    out = dict(given)
    fields: dict[str, dict[str, Any]] = {}
    for key, value in keywords.items():
        group, field = DEPRECATED_KEYWORDS[key]
        cls = OPTION_TYPES[group].__name__
        if given.get(group) is not None:
            raise EdgebertError(f"{caller}() got both {key}= and {group}=", f"pass {group}={cls}({field}=...) only")
        warnings.warn(
            f"{caller}({key}=...) is deprecated; pass {group}=edgebert.{cls}({field}=...)",
            DeprecationWarning,
            stacklevel=_caller_stacklevel(),
        )
        fields.setdefault(group, {})[field] = value
    for group, values in fields.items():
        out[group] = OPTION_TYPES[group](**values)
    return out


def _caller_stacklevel() -> int:
    """The ``stacklevel`` (for a warning raised by the function that calls this) of the first
    frame outside ``edgebert.runtime``: the user's call of ``load`` or ``EdgeModel``."""
    frame, level = sys._getframe(2), 2
    while frame.f_back is not None and frame.f_globals.get("__name__", "").startswith("edgebert.runtime"):
        frame, level = frame.f_back, level + 1
    return level


def check(backend: str, delegate: str, options: dict[str, Any]) -> None:
    """Refuses options of the wrong type, ``gpu=`` without ``delegate="gpu"`` and an ``exact_int8``
    setting with ``backend="tflite"``. (A ``TfliteOptions`` field that does not apply is refused
    where the runner is picked, as its deprecated keyword always was; ``backend="auto"`` takes
    the options of both formats and uses those of the one that runs.)"""
    for group, value in options.items():
        cls = OPTION_TYPES[group]
        if value is not None and not isinstance(value, cls):
            raise EdgebertError(
                f"{group}= takes a {cls.__name__}, got a {type(value).__name__}",
                f"pass {group}=edgebert.{cls.__name__}(...)",
            )
    if options.get("gpu") is not None and delegate != "gpu":
        raise EdgebertError(
            f"GpuOptions apply to delegate='gpu', not delegate={delegate!r}", "pass delegate='gpu', or drop gpu="
        )
    onnx = options.get("onnx")
    if onnx is not None and onnx.exact_int8 is not None and backend == "tflite":
        raise EdgebertError(
            "OnnxOptions(exact_int8=...) applies to backend='onnx', not backend='tflite'",
            "pass backend='onnx' (or 'auto'), or drop onnx=",
        )
