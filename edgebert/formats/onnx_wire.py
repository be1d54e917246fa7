"""Just enough of the protobuf wire format to edit an ONNX file without the ``onnx`` package.

The device runtime depends on ONNX Runtime only (no ``onnx``, whose wheel is 17 MB of
protobuf classes). An edit here keeps every field it does not touch as the bytes it was:
a message is a list of ``Field``s, each holding its raw encoding, so unknown and untouched
fields pass through unchanged.

ONNX field numbers used (``onnx/onnx.proto``): ModelProto.graph 7; GraphProto.node 1,
initializer 5; NodeProto.input 1, op_type 4, domain 7; TensorProto.dims 1, data_type 2,
int32_data 5, name 8, raw_data 9, external_data 13, data_location 14;
StringStringEntryProto.key 1, value 2.
"""

from __future__ import annotations

import dataclasses

from edgebert.errors import EdgebertError

VARINT, FIXED64, BYTES, FIXED32 = 0, 1, 2, 5

MODEL_GRAPH = 7
GRAPH_NODE, GRAPH_INITIALIZER = 1, 5
NODE_INPUT, NODE_OP_TYPE, NODE_DOMAIN = 1, 4, 7
TENSOR_DIMS, TENSOR_DATA_TYPE, TENSOR_INT32_DATA, TENSOR_NAME, TENSOR_RAW_DATA = 1, 2, 5, 8, 9
TENSOR_EXTERNAL_DATA, TENSOR_DATA_LOCATION = 13, 14
UINT8, INT8 = 2, 3  # TensorProto.DataType
EXTERNAL = 1  # TensorProto.DataLocation


@dataclasses.dataclass
class Field:
    """One field of a message: its number, wire type, decoded value (an int for varints, the
    payload bytes otherwise) and its whole encoding."""

    number: int
    wire_type: int
    value: int | bytes
    raw: bytes


def read_varint(buf: bytes, i: int) -> tuple[int, int]:
    """The varint at ``buf[i:]`` and the index after it."""
    value, shift = 0, 0
    while True:
        if i >= len(buf) or shift > 63:
            raise EdgebertError("the ONNX file ends inside a number (truncated)", "export it again")
        b = buf[i]
        i += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, i
        shift += 7


def varint(value: int) -> bytes:
    """``value`` (>= 0, or a negative int64 as protobuf writes it) as a varint."""
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = value & 0x7F
        value >>= 7
        if value:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def parse(buf: bytes) -> list[Field]:
    """The fields of one message, in file order."""
    fields, i = [], 0
    while i < len(buf):
        start = i
        key, i = read_varint(buf, i)
        number, wire = key >> 3, key & 7
        value: int | bytes
        if wire == VARINT:
            value, i = read_varint(buf, i)
        elif wire == BYTES:
            size, i = read_varint(buf, i)
            if i + size > len(buf):
                raise EdgebertError("the ONNX file ends inside a field (truncated)", "export it again")
            value, i = buf[i : i + size], i + size
        elif wire in (FIXED64, FIXED32):
            width = 8 if wire == FIXED64 else 4
            value, i = buf[i : i + width], i + width
        else:
            raise EdgebertError(f"the ONNX file has wire type {wire}, not protobuf", "export it again")
        fields.append(Field(number, wire, value, bytes(buf[start:i])))
    return fields


def encode(number: int, value: int | bytes) -> bytes:
    """One field: a varint for an int, length-delimited for bytes."""
    if isinstance(value, int):
        return varint(number << 3 | VARINT) + varint(value)
    return varint(number << 3 | BYTES) + varint(len(value)) + bytes(value)


def join(fields: list[Field]) -> bytes:
    return b"".join(f.raw for f in fields)


def strings(fields: list[Field], number: int) -> list[str]:
    return [bytes(f.value).decode("utf-8") for f in fields if f.number == number]


def first(fields: list[Field], number: int, default=None):
    return next((f.value for f in fields if f.number == number), default)


def packed_ints(fields: list[Field], number: int) -> list[int]:
    """A repeated integer field, packed or not, as signed 64-bit values."""
    out: list[int] = []
    for f in fields:
        if f.number != number:
            continue
        if f.wire_type == VARINT:
            out.append(int(f.value))
        else:
            payload, i = bytes(f.value), 0
            while i < len(payload):
                v, i = read_varint(payload, i)
                out.append(v)
    return [v - (1 << 64) if v >= 1 << 63 else v for v in out]


def external_data(fields: list[Field]) -> dict[str, str]:
    """A TensorProto's external-data entries (location, offset, length...)."""
    entries = {}
    for f in fields:
        if f.number == TENSOR_EXTERNAL_DATA:
            entry = parse(bytes(f.value))
            entries[bytes(first(entry, 1, b"")).decode()] = bytes(first(entry, 2, b"")).decode()
    return entries
