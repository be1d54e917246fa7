"""Export side of edgebert: importing checkpoints into the reference SavedModel and
converting it to TFLite / ONNX. Installed as ``edgebert.exporters``; needs the ``export``
extra (TensorFlow) for everything but the numpy pieces."""
