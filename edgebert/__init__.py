"""edgebert: Google's BERT models on edge devices.

Importing this package never imports TensorFlow: the runtime and tokenizer run with numpy,
ai-edge-litert / onnxruntime only (the tokenizer is pure Python). The export side lives in
``edgebert.exporters`` and ``edgebert.quantize`` and needs the ``export`` extra.
"""

__version__ = "0.1.0"

from edgebert.errors import EdgebertError  # noqa: E402
from edgebert.runtime.edge_model import BertModel, EdgeModel, load  # noqa: E402
from edgebert.runtime.options import GpuOptions, OnnxOptions, TfliteOptions  # noqa: E402

__all__ = [
    "BertModel",
    "EdgeModel",
    "EdgebertError",
    "GpuOptions",
    "OnnxOptions",
    "TfliteOptions",
    "__version__",
    "load",
]
