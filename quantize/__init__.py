"""Quantization for edgebert exports (installed as ``edgebert.quantize``).

Recipes are data (``recipes.json``); ``recipes.get(name)`` reads one. The calibration
text, the SmoothQuant pass and the per-format application of a recipe live in their
own modules.
"""
