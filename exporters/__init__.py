"""Export side of edgebert (installed as ``edgebert.exporters``; needs the ``export`` extra).

Three layers, each importing only from those before it and from ``edgebert`` / ``edgebert.quantize``:
``sources`` (five source formats read into one ``SourceModel``), ``convert`` (the checked
reference SavedModel, the encoder graph, the TFLite and ONNX writers, the worker processes)
and ``pipelines`` (what a user runs: export, verify, android, finetune).
"""
