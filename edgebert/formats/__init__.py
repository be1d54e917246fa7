"""Readers of the model files themselves, with no runtime: the TFLite flatbuffer (ops, tensors,
quantization), ONNX's protobuf wire format, and the exact-int8 rewrite of ONNX files at load."""
