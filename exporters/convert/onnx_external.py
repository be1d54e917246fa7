"""Moves an ONNX file's weights into a data file beside it (ONNX external data).

ONNX Runtime reads a self-contained file into a protobuf and then copies every initializer out
of it, so a process briefly holds the weights twice; initializers in an external file are read
(or memory-mapped) straight into their tensors. Measured on BERT-base int8 (112 MB, onnxruntime
1.32, load + one call at seq 128): peak RSS 196.8 MB self-contained, 167.9 MB with external
data, the same outputs and speed (benchmarks/, README "Memory").
"""

from __future__ import annotations

from pathlib import Path

from edgebert.exporters.convert import costs

DATA_SUFFIX = ".data"
# Smaller tensors (shapes, scales, zero points) stay in the graph, where ONNX tools read them.
MIN_EXTERNAL_BYTES = 1024


def data_file_of(path: str | Path) -> Path:
    """The data file that ``path``'s weights move to: ``model.onnx`` -> ``model.onnx.data``."""
    path = Path(path)
    return path.with_name(path.name + DATA_SUFFIX)


def save_with_external_data(model, path: str | Path) -> Path:
    """Writes the ``onnx.ModelProto`` ``model`` to ``path`` with its large initializers in
    ``data_file_of(path)``, streamed tensor by tensor (no serialized copy of the weights);
    returns the data file."""
    import onnx

    path = Path(path)
    data = data_file_of(path)
    data.unlink(missing_ok=True)  # onnx appends to an existing data file
    onnx.save_model(
        model,
        str(path),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location=data.name,
        size_threshold=MIN_EXTERNAL_BYTES,
    )
    return data


def move_weights_out(path: str | Path) -> Path:
    """Rewrites ``path`` with its large initializers in ``data_file_of(path)``; returns that file.

    Args:
      path: a self-contained ``.onnx`` file inside a staging directory (the pair is renamed into
        place with the bundle, so neither file is seen half written).
    """
    import onnx

    path = Path(path)
    model = onnx.load(str(path))
    data = save_with_external_data(model, path)
    # The exporting process runs this, and the gate after it starts its peak from what this
    # process then holds: hand the model's pages back (glibc keeps freed heap pages otherwise).
    del model
    costs.return_freed_memory()
    return data


def stored_bytes(path: str | Path) -> int:
    """A model file's bytes with those of its data file, where it has one."""
    path = Path(path)
    data = data_file_of(path)
    return path.stat().st_size + (data.stat().st_size if data.is_file() else 0)
