"""The canonical BERT every stage shares: its hyper-parameters and weight names (``config``), the
weights as read from any source (``source_model.SourceModel``), and a numpy forward pass
(``numpy_bert``) that checks conversions and records activation ranges. Numpy only, no
TensorFlow: the quantizers and the converters build on it, nothing here imports them."""
