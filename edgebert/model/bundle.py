"""A bundle on disk: its file names, the manifest's format version, the manifest as a typed
value (``Manifest``, one ``ModelEntry`` per model file), and the one way to read and to write it
(``edgebert.json``). Export, Android assets, verify, the runtime and the benchmarks all go
through here."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from edgebert.errors import EdgebertError

MANIFEST = "edgebert.json"
# Raised when a manifest field changes meaning; readers check it before trusting the rest.
FORMAT_VERSION = 1
MODEL_FILES = {"tflite": "model.tflite", "onnx": "model.onnx"}
VOCAB = "vocab.txt"


@dataclasses.dataclass
class ModelEntry:
    """One model file of a bundle.

    Attributes:
      file: its name in the bundle (``MODEL_FILES``).
      sha256, bytes: what the runtime checks before loading it.
      data_file, data_sha256, data_bytes: ONNX: the file beside it that holds the weights (ONNX
        external data, so ONNX Runtime does not hold them twice while loading), and its checks.
      runtime: the runtime that measured it (``ai-edge-litert`` or ``onnxruntime``).
      inputs, outputs: ``{"name", "dtype", "shape"}`` each; ``-1`` for a dynamic dimension.
      buckets: the static lengths of a length-bucketed TFLite file (one signature each).
      conversion: what the conversion did (recipe steps, seconds, peak memory).
      accuracy: the export gate's comparison with the reference, per output.
      gate: ``{"passed", "misses"}``.
      gpu_compatibility: ``edgebert.checks.gpu``'s report (TFLite).
      nnapi_compatibility: ``edgebert.checks.nnapi``'s report at the newest feature level (TFLite).
      edgetpu_compatibility: ``edgebert.checks.edgetpu``'s report: the ops the Edge TPU compiler's
        published rules would map (TFLite).
      integer_ops: ``edgebert.checks.integer_ops``' report: whether every op computes in integers (int8
        recipes).
      xnnpack_delegation: what XNNPACK took when the export gate ran the file on the exporting
        machine (``nodes_total``, ``nodes_delegated``, ``partitions``, ``not_delegated``): the
        weight-cache runner reports it, as LiteRT's CompiledModel API does not say (TFLite).
      extra: fields this version does not name, kept as read.
    """

    file: str
    sha256: str | None = None
    bytes: int | None = None
    data_file: str | None = None
    data_sha256: str | None = None
    data_bytes: int | None = None
    runtime: str | None = None
    conversion: dict | None = None
    inputs: list[dict] = dataclasses.field(default_factory=list)
    outputs: list[dict] = dataclasses.field(default_factory=list)
    buckets: list[int] | None = None
    accuracy: dict | None = None
    gate: dict | None = None
    gpu_compatibility: dict | None = None
    nnapi_compatibility: dict | None = None
    edgetpu_compatibility: dict | None = None
    integer_ops: dict | None = None
    xnnpack_delegation: dict | None = None
    extra: dict = dataclasses.field(default_factory=dict)

    @property
    def total_bytes(self) -> int | None:
        """The model's bytes with its data file's (ONNX weights stored beside the graph)."""
        return None if self.bytes is None else self.bytes + (self.data_bytes or 0)

    @property
    def batch(self) -> int | None:
        """The static batch of the first input, or None when it is dynamic."""
        dim = (self.inputs or [{}])[0].get("shape", [-1])[0]
        return dim if isinstance(dim, int) and dim > 0 else None


@dataclasses.dataclass
class Manifest:
    """``edgebert.json``: what a bundle holds and how it was made.

    Attributes:
      models: format (``tflite``/``onnx``) -> its ``ModelEntry``.
      architecture: ``BertConfig`` fields.
      tokenizer: ``{"vocab", "do_lower_case", "casing"}``.
      seq_length: the fixed length, or None for a dynamic sequence axis.
      buckets, max_seq_length: the lengths of a bucketed export, the longest text it takes.
      recipe: the quantization recipe as data (``edgebert.quantize.recipes.Recipe``).
      kind: ``android-assets`` for ``edgebert android``'s folder, None for an export.
      task: ``classifier`` or ``embedder`` for a model with a head; None for the encoder.
      head, labels, pooling, head_training: a classifier's head and how it was made.
      source, reference, calibration, tools, export_cost, verify: provenance and costs.
      extra: fields this version does not name, kept as read.
    """

    models: dict[str, ModelEntry]
    architecture: dict
    tokenizer: dict
    recipe: dict
    seq_length: int | None = None
    format_version: int = FORMAT_VERSION
    kind: str | None = None
    task: str | None = None
    created: str | None = None
    source: dict | None = None
    reference: dict | None = None
    buckets: list[int] | None = None
    max_seq_length: int | None = None
    graph_form: str | None = None
    pooling: str | None = None
    labels: list[str] | None = None
    head: dict | None = None
    head_training: dict | None = None
    calibration: dict | None = None
    tools: dict | None = None
    export_cost: dict | None = None
    verify: dict | None = None
    extra: dict = dataclasses.field(default_factory=dict)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Manifest:
        known = {f.name for f in dataclasses.fields(cls)} - {"extra", "models"}
        models = {fmt: _entry(e) for fmt, e in data.get("models", {}).items()}
        return cls(
            models=models,
            **{k: v for k, v in data.items() if k in known},
            extra={k: v for k, v in data.items() if k not in known | {"models"}},
        )

    def to_json(self) -> dict[str, Any]:
        """The JSON object; optional fields that are None are left out (``seq_length`` is
        always written: null says the sequence axis is dynamic)."""
        out: dict[str, Any] = {"format_version": self.format_version}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name in ("format_version", "extra") or (value is None and f.name != "seq_length"):
                continue
            out[f.name] = {k: _entry_json(e) for k, e in value.items()} if f.name == "models" else value
        return {**out, **self.extra}

    @property
    def max_length(self) -> int:
        """The longest sequence the bundle runs: its fixed length, its longest bucket, or the
        model's positions."""
        return int(self.seq_length or self.max_seq_length or self.architecture.get("max_position", 512))

    @property
    def do_lower_case(self) -> bool:
        return bool(self.tokenizer["do_lower_case"])


def _entry(data: dict[str, Any]) -> ModelEntry:
    known = {f.name for f in dataclasses.fields(ModelEntry)} - {"extra"}
    return ModelEntry(
        **{k: v for k, v in data.items() if k in known}, extra={k: v for k, v in data.items() if k not in known}
    )


def _entry_json(entry: ModelEntry) -> dict[str, Any]:
    out = {
        f.name: getattr(entry, f.name)
        for f in dataclasses.fields(entry)
        if f.name != "extra" and getattr(entry, f.name) is not None
    }
    return {**out, **entry.extra}


def is_bundle(path: str | Path) -> bool:
    return (Path(path) / MANIFEST).is_file()


def read_manifest(bundle: str | Path) -> Manifest:
    """The manifest of ``bundle``, or a one-line error saying what the path is instead."""
    bundle = Path(bundle)
    if not bundle.exists():
        raise EdgebertError(f"bundle {bundle} not found", "pass the directory written by `edgebert export -o`")
    if not bundle.is_dir():
        raise EdgebertError(
            f"{bundle} is a file, not a bundle directory", f"pass the directory that holds {MANIFEST} and the model"
        )
    path = bundle / MANIFEST
    if not path.is_file():
        raise EdgebertError(
            f"{bundle} has no {MANIFEST}: it is not an edgebert bundle", "export one with `edgebert export -o DIR`"
        )
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise EdgebertError(f"{path} is not valid JSON ({e})", "export the bundle again") from None
    version = manifest.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise EdgebertError(
            f"{path} has manifest format {version!r}; this edgebert reads up to {FORMAT_VERSION}",
            "upgrade edgebert (pip install -U edgebert), or export the bundle again",
        )
    try:
        return Manifest.from_json(manifest)
    except (TypeError, AttributeError) as e:  # a required field missing, or of the wrong kind
        raise EdgebertError(f"{path} is not a complete edgebert manifest ({e})", "export the bundle again") from None


def write_manifest(bundle: str | Path, manifest: Manifest) -> Manifest:
    """Writes ``manifest`` (with this format version) into ``bundle`` atomically; returns it as a
    reader will see it (JSON types: tuples become lists)."""
    from edgebert.files import atomic_write_bytes

    data = manifest.to_json()
    data["format_version"] = FORMAT_VERSION  # written by this version, whatever it was read as
    text = json.dumps(data, indent=1)
    atomic_write_bytes(Path(bundle) / MANIFEST, text.encode())
    return Manifest.from_json(json.loads(text))
