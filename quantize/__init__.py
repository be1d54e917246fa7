"""Quantization for edgebert exports (installed as ``edgebert.quantize``).

Recipes are data (``recipes.json``); ``recipes.get(name)`` reads one. Each format applies a
recipe through its method table (``tflite_quant.METHODS``, ``onnx_quant.METHODS``: method name
-> the function and the keys it reads). The calibration text, SmoothQuant and the int8
embedding rows live in their own modules. Imports only the device side (``edgebert``).
"""
