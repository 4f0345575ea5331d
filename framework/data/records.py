"""A small self-describing record format for dicts of numpy arrays (no pickle, no TF).

Layout of one record: b"TSR1", a little-endian uint32 header length, a JSON header
({"crc32": int, "arrays": [[key, dtype, shape, nbytes], ...]}), then the raw array bytes in
header order. Encoding is deterministic (same arrays -> same bytes).

Besides numeric arrays a value may be `bytes` (dtype "bytes", e.g. an encoded JPEG), `str`
(dtype "str", stored as UTF-8, e.g. a caption) or a list of bytes (dtype "bytes[]", shape
[n], with a fifth header field listing the n lengths, e.g. the encoded frames of a video).
Records holding only numeric arrays are unchanged from the first version of the format.
"""

from __future__ import annotations

import dataclasses
import json
import struct
import zlib

import numpy as np

MAGIC = b"TSR1"
_HEADER_LEN = struct.Struct("<I")


def encode_example(example: dict) -> bytes:
    """Serializes a dict of numpy arrays (any shapes, numeric dtypes), bytes, str or lists of
    bytes to bytes."""
    entries, payloads = [], []
    for key in sorted(example):
        entry, data = _encode_value(key, example[key])
        entries.append(entry)
        payloads.append(data)
    payload = b"".join(payloads)
    header = json.dumps({"crc32": zlib.crc32(payload), "arrays": entries},
                        separators=(",", ":")).encode()
    return MAGIC + _HEADER_LEN.pack(len(header)) + header + payload


def decode_example(record: bytes) -> dict[str, np.ndarray]:
    """Parses bytes from `encode_example` back into a dict of (read-only) numpy arrays.

    Raises ValueError when the record is truncated, has a bad header or a bad checksum.
    """
    record = bytes(record)
    if record[:4] != MAGIC:
        raise ValueError(f"not a Tessera record (starts with {record[:4]!r}, expected {MAGIC!r})")
    if len(record) < 8:
        raise ValueError("record truncated inside its header length")
    (header_len,) = _HEADER_LEN.unpack_from(record, 4)
    start = 8 + header_len
    try:
        header = json.loads(record[8:start])
        entries = header["arrays"]
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(f"unreadable record header ({e})") from None
    payload = memoryview(record)[start:]
    if len(payload) != sum(int(e[3]) for e in entries):
        raise ValueError(f"record payload has {len(payload)} bytes, header says "
                         f"{sum(int(e[3]) for e in entries)}")
    if zlib.crc32(payload) != header.get("crc32"):
        raise ValueError("record payload checksum mismatch")
    out, offset = {}, 0
    for entry in entries:
        key, dtype, shape, nbytes = entry[:4]
        chunk = payload[offset:offset + nbytes]
        if dtype == "bytes":
            out[key] = bytes(chunk)
        elif dtype == "str":
            out[key] = bytes(chunk).decode("utf-8")
        elif dtype == "bytes[]":
            ends = np.cumsum([0] + list(entry[4]))
            out[key] = [bytes(chunk[a:b]) for a, b in zip(ends[:-1], ends[1:])]
        else:
            out[key] = np.frombuffer(payload, dtype=np.dtype(dtype), count=int(np.prod(shape)),
                                     offset=offset).reshape(tuple(shape))
        offset += nbytes
    return out


def _encode_value(key: str, value) -> tuple[list, bytes]:
    """Returns (header entry, payload bytes) of one value of an example."""
    if isinstance(value, bytes | bytearray | memoryview):
        data = bytes(value)
        return [key, "bytes", [], len(data)], data
    if isinstance(value, str):
        data = value.encode("utf-8")
        return [key, "str", [], len(data)], data
    if isinstance(value, list | tuple) and value and all(
            isinstance(v, bytes | bytearray) for v in value):
        lengths = [len(v) for v in value]
        return [key, "bytes[]", [len(value)], sum(lengths), lengths], b"".join(value)
    array = np.asarray(value)
    if array.dtype.kind not in "biuf":
        raise TypeError(f"encode_example: {key!r} has unsupported dtype {array.dtype} "
                        "(numeric arrays, bytes, str and lists of bytes are supported).")
    data = array.tobytes(order="C")
    return [key, array.dtype.str, list(array.shape), len(data)], data


@dataclasses.dataclass(frozen=True)
class PixelDecoder:
    """Decodes a record whose `pixel_key` array is uint8 pixels into the model's input format.

    Called with record bytes; returns {pixel_key: float32 array of the stored shape (e.g.
    (H, W, 3) or (T, H, W, 3)) scaled to [-1, 1], 'label': int32 ()} plus any other stored
    arrays unchanged. Picklable, so it runs in grain worker processes.
    """

    pixel_key: str = "image"

    def __call__(self, record: bytes) -> dict[str, np.ndarray]:
        example = decode_example(record)
        pixels = example[self.pixel_key]
        if pixels.dtype != np.uint8:
            raise ValueError(f"{self.pixel_key!r} is {pixels.dtype}, expected uint8")
        out = dict(example)
        out[self.pixel_key] = pixels.astype(np.float32) * np.float32(2 / 255) - np.float32(1)
        out["label"] = np.asarray(example["label"], np.int32)
        return out
