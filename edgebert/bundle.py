"""A bundle on disk: its file names, the manifest's format version, and the one way to read
and to write its manifest (``edgebert.json``). Export, Android assets, verify, the runtime and
the benchmarks all go through here."""

from __future__ import annotations

import json
from pathlib import Path

from edgebert.errors import EdgebertError

MANIFEST = "edgebert.json"
# Raised when a manifest field changes meaning; readers check it before trusting the rest.
FORMAT_VERSION = 1
MODEL_FILES = {"tflite": "model.tflite", "onnx": "model.onnx"}
VOCAB = "vocab.txt"


def is_bundle(path: str | Path) -> bool:
    return (Path(path) / MANIFEST).is_file()


def read_manifest(bundle: str | Path) -> dict:
    """The manifest of ``bundle``, or a one-line error saying what the path is instead."""
    bundle = Path(bundle)
    if not bundle.exists():
        raise EdgebertError(f"bundle {bundle} not found", "pass the directory written by `edgebert export -o`")
    if not bundle.is_dir():
        raise EdgebertError(f"{bundle} is a file, not a bundle directory",
                            f"pass the directory that holds {MANIFEST} and the model")
    path = bundle / MANIFEST
    if not path.is_file():
        raise EdgebertError(f"{bundle} has no {MANIFEST}: it is not an edgebert bundle",
                            "export one with `edgebert export -o DIR`")
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise EdgebertError(f"{path} is not valid JSON ({e})", "export the bundle again") from None
    version = manifest.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise EdgebertError(f"{path} has manifest format {version!r}; this edgebert reads up to {FORMAT_VERSION}",
                            "upgrade edgebert (pip install -U edgebert), or export the bundle again")
    return manifest


def write_manifest(bundle: str | Path, manifest: dict) -> dict:
    """Writes ``manifest`` (with this format version) into ``bundle`` atomically; returns it as a
    reader will see it (JSON types: tuples become lists)."""
    from edgebert.files import atomic_write_bytes

    text = json.dumps({"format_version": FORMAT_VERSION, **manifest}, indent=1)
    atomic_write_bytes(Path(bundle) / MANIFEST, text.encode())
    return json.loads(text)
