"""The device runtime: a bundle opened with its tokenizer and a runner per model file (LiteRT or
ONNX Runtime), the delegates and execution providers they run on, and the mapped-page release
that keeps a device process's memory near its file size. Imports no TensorFlow."""

from edgebert.runtime.edge_model import BertModel, EdgeModel, load
from edgebert.runtime.options import GpuOptions, OnnxOptions, TfliteOptions
from edgebert.runtime.runner_protocol import Runner

__all__ = ["BertModel", "EdgeModel", "GpuOptions", "OnnxOptions", "Runner", "TfliteOptions", "load"]
