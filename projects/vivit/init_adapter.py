"""Init adapter "vivit.from_vit": a 2D image ViT checkpoint mapped into any ViViT variant.

Follows the paper's Sec. 3.4 ("Initialisation by pretrained models"):
- the patch kernel (ph, pw, C, D) is inflated to the tubelet (pt, ph, pw, C, D) by
  `inflation`: 'central_frame' (the kernel on the middle frame, zeros elsewhere: a clip of
  identical frames embeds as the image) or 'average' (the kernel / pt on every frame);
- the spatial position embeddings are resized (bilinear) when the patch grid differs and,
  for the models with one embedding over all tokens (1, 3, 4), repeated over time;
  model 2's temporal position embeddings and temporal class token start at their init;
- the encoder blocks load as they are (model 2: into `SpatialTransformer`); in model 3 the
  spatial attention and its LayerNorm take the image block's, and the temporal attention
  starts at zero (`temporal_attention_init='zero'`, the paper: the temporal branch is an
  identity residual at first) or as a copy of the spatial one ('copy', Scenic's default);
- model 2's temporal encoder starts at its random init (`temporal_encoder_init='random'`,
  as the paper; 'spatial' copies the first temporal_depth spatial blocks instead);
- the classifier `head` is not loaded unless `load_head` (a new dataset's classes).

Sources: our ViT and big_vision `.npz` (embedding, pos_embedding, cls, Transformer/...,
head; scanned or not) and Scenic's ViT (Transformer/posembed_input/pos_embedding with a
class-token row, output_projection). Parameters whose shapes cannot be reconciled raise
IncompatibleCheckpointError listing them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import numpy as np

from framework import pretrained, registry
from framework.pretrained import IncompatibleCheckpointError

SCENIC_POSEMB = "Transformer/posembed_input/pos_embedding"
TEMPORAL_ATTENTION_INITS = ("zero", "copy", "random")
TEMPORAL_ENCODER_INITS = ("random", "spatial")
# Model 3 block names -> the image block's names (Scenic's mapping).
_FACTORISED_BLOCK_NAMES = (
    ("LayerNorm_space/", "LayerNorm_0/"),
    ("MultiHeadDotProductAttention_space/", "MultiHeadDotProductAttention_0/"),
    ("LayerNorm_mlp/", "LayerNorm_1/"),
    ("MlpBlock/", "MlpBlock_0/"),
)


def canonical_vit(source: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Returns a 2D ViT's flat params in big_vision names, scanned and unscanned blocks both.

    Scenic's `Transformer/posembed_input/pos_embedding` (1, [1 +] N, D) becomes
    `pos_embedding` (1, N, D) (a class-token row, present when N + 1 is not a square but N
    is, is dropped) and `output_projection` becomes `head`.
    """
    out = dict(source)
    if SCENIC_POSEMB in out and "pos_embedding" not in out:
        posemb = np.asarray(out.pop(SCENIC_POSEMB))
        n = posemb.shape[1]
        if not _is_square(n) and _is_square(n - 1):
            posemb = posemb[:, 1:]
        out["pos_embedding"] = posemb
    for key in [k for k in out if k.startswith("output_projection/")]:
        out.setdefault("head/" + key.split("/", 1)[1], out.pop(key))
    return pretrained.unstack_layers(pretrained.stack_layers(out))


def _is_square(n: int) -> bool:
    side = int(round(np.sqrt(n)))
    return side * side == n


def source_key(key: str, *, temporal_attention_init: str,
               temporal_encoder_init: str) -> str | None:
    """Returns the image-ViT key that fills ViViT param `key`, or None (left at init or
    set by the adapter itself)."""
    if key.startswith("TemporalTransformer/"):
        if temporal_encoder_init == "spatial":
            return "Transformer/" + key.split("/", 1)[1]
        return None
    if key.startswith("SpatialTransformer/"):
        key = "Transformer/" + key.split("/", 1)[1]
    if "/LayerNorm_time/" in key:
        return None
    if "/MultiHeadDotProductAttention_time/" in key:
        if temporal_attention_init != "copy":
            return None
        return key.replace("MultiHeadDotProductAttention_time/", "MultiHeadDotProductAttention_0/")
    for ours, theirs in _FACTORISED_BLOCK_NAMES:
        key = re.sub(f"(encoderblock(?:_\\d+)?)/{ours}", f"\\1/{theirs}", key)
    return key


def video_posemb(posemb: np.ndarray, grid: tuple[int, int, int]) -> np.ndarray:
    """Returns image position embeddings (1, N, D) resized to the (h, w) of `grid`
    (t, h, w) and repeated over its t frames: (1, t * h * w, D), time-major."""
    t, h, w = grid
    if posemb.shape[1] != h * w:
        posemb = pretrained.resize_posemb_grid(posemb, (h, w))
    return np.tile(posemb, (1, t, 1))


def _token_grid(target_len: int, source_len: int, token_grid: tuple) -> tuple[int, int, int]:
    """(t, h, w) of a joint position embedding of `target_len` tokens."""
    if token_grid:
        grid = tuple(int(g) for g in token_grid)
        if len(grid) != 3 or int(np.prod(grid)) != target_len:
            raise IncompatibleCheckpointError(
                f"config.init_from.options.token_grid={token_grid}: must be (t, h, w) with "
                f"t * h * w = {target_len}, the model's number of tokens.")
        return grid
    side = int(round(np.sqrt(source_len)))
    if target_len % source_len or side * side != source_len:
        raise IncompatibleCheckpointError(
            f"pos_embedding: cannot tell the model's token grid ({target_len} tokens) from the "
            f"image model's {source_len}; set config.init_from.options.token_grid=(t, h, w).")
    return target_len // source_len, side, side


@registry.INIT_ADAPTERS.register("vivit.from_vit", formerly=("vivit",))
def vivit_adapter(source: Mapping[str, np.ndarray], target: Mapping[str, Any], *,
                  inflation: str = "central_frame", token_grid: tuple = (),
                  temporal_attention_init: str = "zero", temporal_encoder_init: str = "random",
                  load_head: bool = False,
                  ) -> tuple[dict[str, np.ndarray], dict[str, str], set[str]]:
    """Maps a 2D ViT's flat params `source` onto ViViT's flat param specs `target`.

    Options (config.init_from.options): `inflation` ('central_frame' | 'average'),
    `token_grid` ((t, h, w) of models 1/3/4 when it cannot be inferred: a resized grid),
    `temporal_attention_init` (model 3: 'zero' | 'copy' | 'random'), `temporal_encoder_init`
    (model 2: 'random' | 'spatial'), `load_head`. Returns (values, notes, the checkpoint keys
    read) as the adapter contract of framework.pretrained.
    """
    if temporal_attention_init not in TEMPORAL_ATTENTION_INITS:
        raise IncompatibleCheckpointError(
            f"config.init_from.options.temporal_attention_init={temporal_attention_init!r}: "
            f"use one of {TEMPORAL_ATTENTION_INITS}.")
    if temporal_encoder_init not in TEMPORAL_ENCODER_INITS:
        raise IncompatibleCheckpointError(
            f"config.init_from.options.temporal_encoder_init={temporal_encoder_init!r}: use "
            f"one of {TEMPORAL_ENCODER_INITS}.")
    refuse_video(source)
    src = canonical_vit(source)
    values: dict[str, np.ndarray] = {}
    notes: dict[str, str] = {}
    problems: list[str] = []
    renamed: dict[str, np.ndarray] = {}
    plain: dict[str, Any] = {}
    read: set[str] = set()
    for key, spec in target.items():
        shape = tuple(spec.shape)
        if key == "embedding/kernel" and "embedding/kernel" in src:
            kernel = np.asarray(src[key])
            if kernel.shape == shape:
                values[key], notes[key] = kernel, "loaded"
            elif kernel.ndim == 4 and len(shape) == 5 and kernel.shape == shape[1:]:
                values[key] = pretrained.inflate_kernel(kernel, shape[0], inflation)
                notes[key] = f"inflated {kernel.shape} -> {shape} ({inflation})"
            else:
                problems.append(f"{key}: checkpoint {kernel.shape}, model {shape}")
        elif key == "pos_embedding" and "pos_embedding" in src:
            posemb = np.asarray(src[key])
            if posemb.shape[::2] != shape[::2]:
                problems.append(f"{key}: checkpoint {posemb.shape}, model {shape}")
            elif "temporal_pos_embedding" in target:  # Model 2: a spatial embedding only.
                values[key] = (posemb if posemb.shape == shape else
                               pretrained.resize_posemb_grid(posemb, _square(shape[1], key)))
                notes[key] = ("loaded" if posemb.shape == shape
                              else f"resized {posemb.shape} -> {shape}")
            else:
                grid = _token_grid(shape[1], posemb.shape[1], tuple(token_grid or ()))
                values[key] = video_posemb(posemb, grid)
                notes[key] = f"repeated over {grid[0]} frames {posemb.shape} -> {shape}"
        elif key.startswith("head/") and not load_head:
            notes[key] = "init (head; options.load_head=False)"
        elif "/MultiHeadDotProductAttention_time/" in key and temporal_attention_init == "zero":
            values[key] = np.zeros(shape, spec.dtype)
            notes[key] = "zeros (temporal attention starts as identity)"
        else:
            name = source_key(key, temporal_attention_init=temporal_attention_init,
                              temporal_encoder_init=temporal_encoder_init)
            if name is not None and name in src:
                renamed[key], plain[key] = src[name], spec
                read.add(name)
                if name != key:
                    notes[key] = f"loaded from {name}"
            elif key.startswith(("temporal_", "TemporalTransformer/")) or "_time/" in key:
                notes[key] = "init (temporal; not in an image model)"
    if problems:
        raise IncompatibleCheckpointError(
            "config.init_from (adapter 'vivit.from_vit'): these image-ViT parameters cannot be "
            "mapped onto the ViViT model:\n  " + "\n  ".join(problems) + "\nAdd them to "
            "config.init_from.dont_load to keep them at init, or fix the model's shape.")
    loaded, loaded_notes = pretrained.map_default(renamed, plain, resize_posemb=False)
    for key, value in loaded.items():
        values[key] = value
        notes.setdefault(key, loaded_notes[key])
    values = {k: np.asarray(v).astype(target[k].dtype) for k, v in values.items()}
    read.update(k for k in ("embedding/kernel", "pos_embedding") if k in values)
    return values, notes, read


def refuse_video(source: Mapping[str, np.ndarray]) -> None:
    """Raises IncompatibleCheckpointError when `source` is a video model (a tubelet kernel,
    a factorised encoder or temporal parameters): this adapter would leave those unused."""
    kernel = source.get("embedding/kernel")
    video = [k for k in source if k.startswith(("SpatialTransformer/", "TemporalTransformer/",
                                                "temporal_", "cls_"))]
    if video or (kernel is not None and np.ndim(kernel) == 5):
        raise IncompatibleCheckpointError(
            "config.init_from.path holds a video model (a ViViT: "
            f"{', '.join(video[:2]) or 'a tubelet embedding/kernel'}), not an image ViT; use "
            "config.init_from.adapter='vivit.from_vivit', which maps every spatial and temporal "
            "parameter.")


def _square(n: int, key: str) -> tuple[int, int]:
    if not _is_square(n):
        raise IncompatibleCheckpointError(
            f"{key}: the model's {n} spatial tokens are not a square grid; cannot resize the "
            "image model's position embedding onto it.")
    side = int(round(np.sqrt(n)))
    return side, side
