"""A small self-describing record format for dicts of numpy arrays (no pickle, no TF).

Layout of one record: b"TSR1", a little-endian uint32 header length, a JSON header
({"crc32": int, "arrays": [[key, dtype, shape, nbytes], ...]}), then the raw array bytes in
header order. Encoding is deterministic (same arrays -> same bytes).
"""

from __future__ import annotations

import dataclasses
import json
import struct
import zlib

import numpy as np

MAGIC = b"TSR1"
_HEADER_LEN = struct.Struct("<I")


def encode_example(example: dict[str, np.ndarray]) -> bytes:
    """Serializes a dict of numpy arrays (any shapes, numeric dtypes) to bytes."""
    entries, payloads = [], []
    for key in sorted(example):
        array = np.asarray(example[key])
        if array.dtype.kind not in "biuf":
            raise TypeError(f"encode_example: {key!r} has unsupported dtype {array.dtype}.")
        data = array.tobytes(order="C")
        entries.append([key, array.dtype.str, list(array.shape), len(data)])
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
    for key, dtype, shape, nbytes in entries:
        out[key] = np.frombuffer(payload, dtype=np.dtype(dtype), count=int(np.prod(shape)),
                                 offset=offset).reshape(tuple(shape))
        offset += nbytes
    return out


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
