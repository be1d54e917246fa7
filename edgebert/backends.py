"""Minimal runners for exported files: LiteRT (ai-edge-litert, then tflite-runtime, then
tf.lite) and ONNX Runtime. No TensorFlow unless it is the only TFLite interpreter there."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from edgebert.errors import EdgebertError

INPUT_NAMES = ("input_word_ids", "input_mask", "input_type_ids")
OUTPUT_NAMES = ("pooled_output", "sequence_output")


def _tflite_interpreter_class():
    try:
        from ai_edge_litert.interpreter import Interpreter
        return Interpreter, "ai-edge-litert"
    except ImportError:
        pass
    try:
        from tflite_runtime.interpreter import Interpreter
        return Interpreter, "tflite-runtime"
    except ImportError:
        pass
    try:
        import tensorflow as tf
        return tf.lite.Interpreter, "tensorflow"
    except ImportError:
        raise EdgebertError("no TFLite interpreter is installed", "pip install ai-edge-litert") from None


class TFLiteRunner:
    """Runs a ``.tflite`` with a ``serving_default`` signature."""

    def __init__(self, path: str | os.PathLike, num_threads: int | None = None):
        cls, self.runtime = _tflite_interpreter_class()
        try:
            self.interpreter = cls(model_path=str(path), num_threads=num_threads or os.cpu_count())
        except (ValueError, RuntimeError) as e:
            raise EdgebertError(f"{self.runtime} cannot load {path}: {str(e).splitlines()[0]}",
                                "the file is corrupt, or the runtime is older than the model's ops "
                                "(pip install -U ai-edge-litert)") from None
        self.runner = self.interpreter.get_signature_runner()
        details = self.runner.get_input_details()
        self.seq_length = _fixed(details["input_word_ids"]["shape_signature"][1])

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self.runner(**{k: np.ascontiguousarray(feeds[k], np.int32) for k in INPUT_NAMES})


class OnnxRunner:
    """Runs a ``.onnx`` with ONNX Runtime on the CPU execution provider."""

    def __init__(self, path: str | os.PathLike, num_threads: int | None = None):
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = num_threads or os.cpu_count() or 1
        self.runtime = f"onnxruntime {ort.__version__}"
        try:
            self.session = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        except Exception as e:  # ORT raises its own exception types
            raise EdgebertError(f"onnxruntime cannot load {path}: {str(e).splitlines()[0][:300]}",
                                "the file is corrupt or incomplete; export it again") from None
        dim = {i.name: i.shape for i in self.session.get_inputs()}["input_word_ids"][1]
        self.seq_length = dim if isinstance(dim, int) else None

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = self.session.run(list(OUTPUT_NAMES), {k: np.ascontiguousarray(feeds[k], np.int32)
                                                     for k in INPUT_NAMES})
        return dict(zip(OUTPUT_NAMES, out))


def _fixed(dim) -> int | None:
    return int(dim) if dim is not None and int(dim) > 0 else None


def open_runner(path: str | os.PathLike, num_threads: int | None = None):
    suffix = Path(path).suffix
    if suffix == ".tflite":
        return TFLiteRunner(path, num_threads)
    if suffix == ".onnx":
        return OnnxRunner(path, num_threads)
    raise EdgebertError(f"cannot run {path}", "expected a .tflite or .onnx file")


def run_batches(runner, batches) -> dict[str, np.ndarray]:
    """Runs token batches through ``runner`` and concatenates the outputs along batch.

    ``sequence_output`` rows are padded with zeros to the widest batch.
    """
    pooled, seqs = [], []
    for feeds in batches:
        out = runner.run(feeds)
        pooled.append(out["pooled_output"])
        seqs.append(out["sequence_output"])
    width = max(s.shape[1] for s in seqs)
    seqs = [np.pad(s, ((0, 0), (0, width - s.shape[1]), (0, 0))) for s in seqs]
    return {"pooled_output": np.concatenate(pooled), "sequence_output": np.concatenate(seqs)}
