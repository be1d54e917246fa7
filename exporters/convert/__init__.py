"""Conversion: the reference SavedModel, the Keras encoder graph, TFLite and ONNX writers, the
worker processes that run them with bounded memory, and the layer-tapping rewrite verify uses."""
