"""Quantization recipes for edgebert exports (installed as ``edgebert.quantize``).

Recipes, calibration and the per-recipe accuracy thresholds arrive with the exporters
(issue: exporters and quantization); nothing here is used yet.
"""
