"""Init adapter "mtv.from_vit": each view's encoder from an image ViT of its size.

Config (`config.init_from`): `path` is one checkpoint (read by framework.pretrained) and
`options.view_paths` names one checkpoint per view, widest view first as in
`config.model.views`; an empty entry means "the checkpoint at `path`". E.g. for
B/2+S/4+Ti/8: path = ViT-B, view_paths = ("vit_ti.npz", "vit_s.npz", ""). With no
`view_paths`, `path` is taken as an MTV checkpoint and mapped by name (the "default" adapter),
after the parameters that depend on the clip's frame count are resized in time, as Scenic
does when it fine-tunes an MTV on longer clips (e.g. a 32-frame Kinetics MTV on 48-frame
SSv2): the per-frame class tokens `cls_view{i}` (1, t_i, 1, D) and the global encoder's
position embedding (its class-token position kept, the frames' positions) are linearly
interpolated to the model's frame counts.

What a big_vision-layout ViT (`embedding`, `cls`, `pos_embedding` over the patches,
`Transformer/encoderblock_{l}` or the scanned `Transformer/encoderblock`) gives view i:
- `embedding_view{i}/kernel`: the 2D patch kernel inflated over the tubelet's frames
  (`options.inflation`, 'central_frame' by default, as Scenic's MTV configs);
- `cls_view{i}` (1, t_i, 1, D): the ViT's class token on every frame;
- `MultiviewEncoder/posembed_view{i}`: per frame of a segment, zero for the frame's class
  token then the ViT's patch position embeddings (resized to the view's grid), tiled over
  the segment's frames (Scenic's 'tile');
- `MultiviewEncoder/encoderblock_{l}_view{i}/...`: the ViT's `encoderblock_{l}` for every
  layer l the view has.
Fusion layers, the global encoder and the head stay at their initialisation.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from framework import pretrained, registry
from framework.pretrained import IncompatibleCheckpointError

_EMBED = re.compile(r"^embedding_view(\d+)/kernel$")


def num_views(target: Mapping[str, Any]) -> int:
    """Returns the number of views of an MTV param tree given as flat {key: shape-like}."""
    found = {int(m[1]) for k in target if (m := _EMBED.match(k))}
    if not found or found != set(range(len(found))):
        raise IncompatibleCheckpointError(
            "config.init_from.adapter='mtv.from_vit': the model has no `embedding_view{i}` "
            "params; use this adapter with model 'mtv.classifier'.")
    return len(found)


def view_layout(target: Mapping[str, Any], view: int) -> tuple[int, int]:
    """Returns (frames per segment, tokens per frame) of `view` from the target shapes."""
    temporal = [_temporal_tokens(target, i) for i in range(num_views(target))]
    frames = temporal[view] // min(temporal)
    return frames, target[f"MultiviewEncoder/posembed_view{view}"].shape[1] // frames


def _temporal_tokens(target: Mapping[str, Any], view: int) -> int:
    cls = target.get(f"cls_view{view}")
    if cls is None:
        raise IncompatibleCheckpointError(
            "config.init_from.adapter='mtv.from_vit' maps ViTs onto models with "
            "classifier='token' (it needs cls_view{i}); load the others with dont_load for the "
            "class tokens.")
    return int(cls.shape[1])


def map_vit_to_view(vit: Mapping[str, np.ndarray], target: Mapping[str, Any], view: int,
                    inflation: str = "central_frame") -> tuple[dict, dict]:
    """Maps one image ViT's flat params onto view `view` of the MTV `target`.

    Returns (values, notes) for the target keys it fills, as adapters do. Raises
    IncompatibleCheckpointError when widths or patch sizes differ.
    """
    vit = pretrained.unstack_layers(dict(vit))
    values, notes = {}, {}
    tag = f"view{view}"

    def put(key: str, value: np.ndarray, note: str) -> None:
        want = tuple(target[key].shape)
        if tuple(value.shape) != want:
            raise IncompatibleCheckpointError(
                f"config.init_from.options.view_paths[{view}]: {key} would get shape "
                f"{tuple(value.shape)} from the ViT but the model has {want}; give view "
                f"{view} a ViT of its width and patch size.")
        values[key] = np.asarray(value, target[key].dtype)
        notes[key] = note

    kernel = vit["embedding/kernel"]
    tubelet = tuple(target[f"embedding_{tag}/kernel"].shape)
    put(f"embedding_{tag}/kernel", pretrained.inflate_kernel(kernel, tubelet[0], inflation),
        f"inflated {kernel.shape} ({inflation}) from the view's ViT")
    put(f"embedding_{tag}/bias", vit["embedding/bias"], "loaded from the view's ViT")
    cls_shape = tuple(target[f"cls_{tag}"].shape)
    put(f"cls_{tag}", np.broadcast_to(vit["cls"][:, None], cls_shape),
        "the ViT's class token on every frame")

    frames, per_frame = view_layout(target, view)
    patches = per_frame - 1
    side = int(round(np.sqrt(patches)))
    if side * side != patches:
        raise IncompatibleCheckpointError(
            f"view {view}: {patches} patches per frame is not a square grid; the 'mtv.from_vit' "
            "adapter resizes square position-embedding grids only.")
    posemb = vit["pos_embedding"]
    if posemb.shape[1] != patches:
        posemb = pretrained.resize_posemb_grid(posemb, (side, side))
    frame = np.concatenate([np.zeros_like(posemb[:, :1]), posemb], axis=1)
    put(f"MultiviewEncoder/posembed_{tag}", np.tile(frame, (1, frames, 1)),
        f"the ViT's {vit['pos_embedding'].shape} tiled over {frames} frames")

    prefix = "MultiviewEncoder/encoderblock_"
    for key in target:
        if not (key.startswith(prefix) and f"_{tag}/" in key):
            continue
        layer, _, rest = key[len(prefix):].partition(f"_{tag}/")
        source_key = f"Transformer/encoderblock_{layer}/{rest}"
        if source_key in vit:
            put(key, vit[source_key], "loaded from the view's ViT")
    return values, notes


def resize_in_time(source: Mapping[str, np.ndarray], target: Mapping[str, Any]
                   ) -> tuple[dict, dict]:
    """Returns (values, notes) for the frame-count dependent params of an MTV checkpoint
    `source` whose frame counts differ from the MTV `target`'s (module docstring): class
    tokens `cls_view{i}` (1, t, 1, D) and `global_posembed` (1, 1 + T, D) with a class token
    (else (1, T, D)), linearly interpolated in time. Other params are left to the caller."""
    values, notes = {}, {}
    for key, spec in target.items():
        if key not in source:
            continue
        old, new = np.asarray(source[key]), tuple(spec.shape)
        if old.shape == new or old.ndim != len(new):
            continue
        if re.match(r"^cls_view\d+$", key) and old.shape[::2] == new[::2] and old.ndim == 4:
            line = old[0, :, 0]
            values[key] = pretrained.resize_posemb_grid(line[None], (new[1],))[0][None, :, None]
        elif key == "global_posembed" and old.ndim == 3 and old.shape[::2] == new[::2]:
            first = 1 if "cls_global" in target else 0
            frames = pretrained.resize_posemb_grid(old[:, first:], (new[1] - first,))
            values[key] = np.concatenate([old[:, :first], frames], axis=1)
        else:
            continue
        values[key] = values[key].astype(old.dtype)
        notes[key] = f"resized in time {old.shape} -> {new} (linear)"
    return values, notes


@registry.INIT_ADAPTERS.register("mtv.from_vit", formerly=("mtv",))
def mtv_adapter(source: Mapping[str, np.ndarray], target: Mapping[str, Any], *,
                view_paths: Sequence[str] = (), view_formats: Sequence[str] = (),
                inflation: str = "central_frame") -> tuple[dict, dict]:
    """Registry adapter "mtv.from_vit" (module docstring). `view_formats`: one format per view
    (framework.pretrained.FORMATS; default 'auto'). Returns (values, notes)."""
    if not view_paths:
        resized, resize_notes = resize_in_time(source, target)
        values, notes = pretrained.map_default({**source, **resized}, target,
                                               inflation=inflation)
        notes.update({k: n for k, n in resize_notes.items() if k in values})
        return values, notes
    views = num_views(target)
    if len(view_paths) != views:
        raise IncompatibleCheckpointError(
            f"config.init_from.options.view_paths has {len(view_paths)} entries; the model "
            f"has {views} views (widest first). Use '' for the checkpoint at init_from.path.")
    formats = tuple(view_formats) or ("auto",) * views
    if len(formats) != views:
        raise IncompatibleCheckpointError(
            f"config.init_from.options.view_formats has {len(formats)} entries for {views} "
            "views.")
    values, notes = {}, {}
    for view, (path, fmt) in enumerate(zip(view_paths, formats)):
        vit = source if not path else pretrained.load_flat_params(path, fmt)
        missing = [k for k in ("embedding/kernel", "embedding/bias", "cls", "pos_embedding")
                   if k not in vit]
        if missing:
            raise IncompatibleCheckpointError(
                f"config.init_from.options.view_paths[{view}]={path or '(init_from.path)'!r}: "
                f"not a big_vision-layout ViT with a class token (missing {missing}).")
        view_values, view_notes = map_vit_to_view(vit, target, view, inflation)
        values.update(view_values)
        notes.update({k: f"{n} [{path or 'init_from.path'}]" for k, n in view_notes.items()})
    return values, notes
