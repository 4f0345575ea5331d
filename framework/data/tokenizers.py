"""Text tokenizers (SentencePiece, or bytes with no model file) and the `tokenize` op.

`make_tokenizer(model)` returns a tokenizer: model "bytes" is a byte-level tokenizer (ids
0 pad, 1 EOS, 2 BOS, then 3 + each UTF-8 byte: vocab 259) that needs no file; any other
value is the path of a SentencePiece `.model` file (e.g. big_vision's c4_en, the tokenizer
of the English SigLIP and LiT checkpoints). `tokenize_fixed` turns one string into a fixed
length int32 array, as the text towers take it.

EOS handling (`eos`, big_vision's names): "sticky" appends EOS and pads with EOS, so the
last position always holds an EOS that has seen the whole text (the text tower's 'last'
pooling reads it); "yes" appends EOS and pads with `pad_value`; "no" adds none. Texts
longer than the length are cut so that the EOS still fits.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from typing import Any

import numpy as np

from framework.registry import PREPROCESS_OPS

EOS_MODES = ("sticky", "yes", "no")


class ByteTokenizer:
    """UTF-8 bytes as tokens: pad 0, EOS 1, BOS 2, byte v -> 3 + v; vocab_size 259."""

    pad_id, eos_id, bos_id, offset = 0, 1, 2, 3
    vocab_size = 259

    def encode(self, text: str) -> list[int]:
        """Returns the token ids of `text` (no BOS / EOS)."""
        return [self.offset + v for v in text.encode("utf-8")]

    def decode(self, ids: Any) -> str:
        """Returns the text of token ids, skipping pad / EOS / BOS."""
        return bytes(int(i) - self.offset for i in ids if int(i) >= self.offset).decode(
            "utf-8", errors="replace")


class SentencePieceTokenizer:
    """A SentencePiece model loaded from a `.model` file; picklable (reloads by path)."""

    def __init__(self, path: str):
        """Takes the path of a SentencePiece `.model` file; raises FileNotFoundError."""
        self.path = os.path.expanduser(path)
        if not os.path.isfile(self.path):
            raise FileNotFoundError(
                f"tokenizer model {path!r}: no such file. Give the path of a SentencePiece "
                "'.model' file, or model='bytes' for the byte tokenizer that needs no file.")
        self._load()

    def _load(self) -> None:
        import sentencepiece

        self._sp = sentencepiece.SentencePieceProcessor(model_file=self.path)
        self.vocab_size = int(self._sp.get_piece_size())
        self.eos_id = int(self._sp.eos_id())
        self.bos_id = int(self._sp.bos_id())
        self.pad_id = max(int(self._sp.pad_id()), 0)

    def __getstate__(self) -> dict:
        return {"path": self.path}

    def __setstate__(self, state: dict) -> None:
        self.path = state["path"]
        self._load()

    def encode(self, text: str) -> list[int]:
        """Returns the token ids of `text` (no BOS / EOS)."""
        return list(self._sp.encode(text))

    def decode(self, ids: Any) -> str:
        """Returns the text of token ids, skipping pad and EOS."""
        return self._sp.decode([int(i) for i in ids if int(i) not in (self.pad_id, self.eos_id)])


@functools.lru_cache(maxsize=16)
def make_tokenizer(model: str = "bytes") -> ByteTokenizer | SentencePieceTokenizer:
    """Returns the tokenizer for `model`: "bytes", or the path of a SentencePiece `.model`."""
    if model == "bytes":
        return ByteTokenizer()
    return SentencePieceTokenizer(model)


def tokenize_fixed(tokenizer: Any, text: str, max_len: int, eos: str = "sticky",
                   pad_value: int | None = None) -> np.ndarray:
    """Returns int32 (max_len,): the ids of `text`, EOS per `eos`, padded (see module doc).

    `pad_value` None means the tokenizer's pad id (EOS itself for "sticky").
    """
    if eos not in EOS_MODES:
        raise ValueError(f"tokenize: eos={eos!r}; use one of {EOS_MODES}.")
    if max_len < 1:
        raise ValueError(f"tokenize: max_len={max_len!r} must be a positive int.")
    ids = tokenizer.encode(text)
    if eos == "no":
        ids = ids[:max_len]
    else:
        ids = ids[:max_len - 1] + [tokenizer.eos_id]
    if pad_value is None:
        pad_value = tokenizer.eos_id if eos == "sticky" else tokenizer.pad_id
    out = np.full((max_len,), pad_value, np.int32)
    out[:len(ids)] = ids
    return out


def as_text(value: Any) -> str:
    """Returns a str from a str, bytes, numpy string scalar or uint8 array of UTF-8 bytes."""
    if isinstance(value, str):
        return value
    if isinstance(value, bytes | np.bytes_):
        return bytes(value).decode("utf-8")
    array = np.asarray(value)
    if array.dtype == np.uint8:
        return array.tobytes().decode("utf-8")
    if array.ndim == 0 and array.dtype.kind in "US":
        return as_text(array.item())
    raise TypeError(f"cannot read text from a {type(value).__name__} of dtype "
                    f"{getattr(array, 'dtype', '?')}; expected str, bytes or uint8 bytes.")


@PREPROCESS_OPS.register("tokenize")
@dataclasses.dataclass
class Tokenize:
    """Op: tokenizes example[inkey] into example[outkey], int32 (max_len,).

    `inkey` holds one text (str, bytes or uint8 UTF-8 bytes) or a list / 1-D array of
    several, of which one is drawn with the example's rng (captions of one image). `model`:
    "bytes" or a SentencePiece `.model` path; `eos` and `pad_value` as in `tokenize_fixed`;
    `lower` lower-cases the text first.
    """

    max_len: int
    model: str = "bytes"
    inkey: str = "texts"
    outkey: str = "text"
    eos: str = "sticky"
    pad_value: int | None = None
    lower: bool = False

    def __post_init__(self):
        if self.eos not in EOS_MODES:
            raise ValueError(f"tokenize: eos={self.eos!r}; use one of {EOS_MODES}.")
        try:  # Fail now, naming the config key, rather than in a worker.
            make_tokenizer(self.model)
        except FileNotFoundError as e:
            raise ValueError(str(e)) from None

    def __call__(self, example: dict, rng: np.random.Generator) -> dict:
        if self.inkey not in example:
            raise KeyError(f"tokenize: the example has no {self.inkey!r}; it has "
                           f"{', '.join(sorted(example))} (set inkey=...).")
        value = example[self.inkey]
        if isinstance(value, list | tuple) or (
                isinstance(value, np.ndarray) and value.ndim == 1 and value.dtype.kind in "USO"):
            value = value[int(rng.integers(len(value)))]
        text = as_text(value)
        if self.lower:
            text = text.lower()
        ids = tokenize_fixed(make_tokenizer(self.model), text, self.max_len, self.eos,
                             self.pad_value)
        return {**example, self.outkey: ids}
