"""Init adapter "vivit.from_vivit": a ViViT checkpoint (ours, or Scenic's layout) initialises
a ViViT with other classes, frames or crop size, e.g. Kinetics-400 -> SSv2 / Epic-Kitchens.

Every parameter of the model is taken from the checkpoint except the classifier `head`
(new classes; `options.load_head=True` loads it when the shapes agree):
- the tubelet kernel `embedding/kernel` is kept as it is; its temporal size must be the
  checkpoint's (a kernel over other frames has no meaning to carry over);
- models 1, 3, 4 (`pos_embedding` over all t*h*w tokens): resized linearly over time and
  space when the token grid differs (`options.token_grid`, the model's (t, h, w), tells
  the grid; `options.source_token_grid` the checkpoint's when its spatial grid is not the
  model's);
- model 2: the spatial `pos_embedding` resized bilinearly on a square grid, the temporal
  `temporal_pos_embedding` interpolated linearly over the model's number of frames;
- every encoder block, norm and class token by name (scanned and unscanned layouts both).
A checkpoint parameter the model has no place for (another variant, more layers) and a
model parameter the checkpoint does not hold (fewer layers) are errors
(IncompatibleCheckpointError, naming them and the fix), not silent: a video checkpoint must
fill the whole backbone. `options.allow_unused` (regexes of checkpoint keys) accepts named
leftovers on purpose, e.g. the temporal layers past the model's depth.

Scenic's layout (projects/vivit/scenic_layout.py) is recognised and renamed first; the
adapter then sees our names.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from framework import pretrained, registry
from framework.pretrained import IncompatibleCheckpointError
from projects.vivit import scenic_layout

HEAD = ("head/",)
_STACKED = re.compile(r"^(.*)/encoderblock/(.*)$")


def unstacked(flat: Mapping[str, np.ndarray], origin: Mapping[str, tuple]
              ) -> tuple[dict[str, np.ndarray], dict[str, tuple]]:
    """Returns (flat, origin) with every scanned `X/encoderblock/Y` (L, ...) split into
    `X/encoderblock_{i}/Y`, each keeping the scanned key as its origin."""
    out, where = {}, {}
    for key, value in flat.items():
        match = _STACKED.match(key)
        if match is None:
            out[key], where[key] = value, origin[key]
            continue
        for i in range(value.shape[0]):
            name = f"{match[1]}/encoderblock_{i}/{match[2]}"
            out[name], where[name] = value[i], origin[key]
    return out, where


def joint_grids(target_len: int, source_len: int, token_grid: Sequence[int],
                source_token_grid: Sequence[int]) -> tuple[tuple, tuple]:
    """Returns the (t, h, w) token grids of the model's and the checkpoint's joint position
    embeddings (models 1, 3, 4) from the options; the checkpoint's defaults to the model's
    spatial grid. Raises IncompatibleCheckpointError naming the option to set."""
    grid = tuple(int(g) for g in token_grid or ())
    if len(grid) != 3 or int(np.prod(grid)) != target_len:
        raise IncompatibleCheckpointError(
            f"pos_embedding: the model has {target_len} tokens and the checkpoint "
            f"{source_len}; set config.init_from.options.token_grid to the model's (t, h, w) "
            f"(now {tuple(grid)}) so the embedding can be resized.")
    source = tuple(int(g) for g in source_token_grid or ())
    if not source:
        frames, rest = divmod(source_len, grid[1] * grid[2])
        if rest:
            raise IncompatibleCheckpointError(
                f"pos_embedding: the checkpoint's {source_len} tokens are not frames of the "
                f"model's {grid[1]}x{grid[2]} grid; set config.init_from.options."
                "source_token_grid to the checkpoint's (t, h, w).")
        source = (frames, grid[1], grid[2])
    if len(source) != 3 or int(np.prod(source)) != source_len:
        raise IncompatibleCheckpointError(
            f"config.init_from.options.source_token_grid={source}: must be (t, h, w) with "
            f"t * h * w = {source_len}, the checkpoint's number of tokens.")
    return grid, source


def _square(n: int, what: str) -> tuple[int, int]:
    side = int(round(np.sqrt(n)))
    if side * side != n:
        raise IncompatibleCheckpointError(f"{what}: {n} tokens are not a square grid; cannot "
                                          "resize the checkpoint's position embedding.")
    return side, side


def map_value(key: str, value: np.ndarray, shape: tuple, target: Mapping[str, Any],
              grids: dict) -> tuple[np.ndarray, str]:
    """Returns (value fitted to the model's `shape`, note) for checkpoint `value` of model
    param `key`; raises IncompatibleCheckpointError when the shapes cannot be reconciled.
    `grids` holds the token_grid / source_token_grid options."""
    if value.shape == shape:
        return value, "loaded"
    if key == "embedding/kernel":
        if value.ndim == 4:
            raise IncompatibleCheckpointError(
                f"embedding/kernel: the checkpoint's {value.shape} is an image ViT's patch "
                "kernel; initialise from an image model with config.init_from.adapter="
                "'vivit.from_vit'.")
        if value.ndim == 5 and value.shape[1:] == shape[1:]:
            raise IncompatibleCheckpointError(
                f"embedding/kernel: the checkpoint's tubelet spans {value.shape[0]} frames, the "
                f"model's {shape[0]}; fine-tuning a ViViT keeps the tubelet: set "
                f"config.model.patch_size to ({value.shape[0]}, {shape[1]}, {shape[2]}).")
    elif key == "temporal_pos_embedding" and value.shape[::2] == shape[::2]:
        return (pretrained.resize_posemb_grid(value, (shape[1],)),
                f"resized {value.shape} -> {shape} (interpolated over time)")
    elif key == "pos_embedding" and value.shape[::2] == shape[::2]:
        if "temporal_pos_embedding" in target:  # Model 2: one frame's grid.
            new = _square(shape[1], "pos_embedding (model)")
            return (pretrained.resize_posemb_grid(value, new, _square(value.shape[1], key)),
                    f"resized {value.shape} -> {shape}")
        grid, source = joint_grids(shape[1], value.shape[1], **grids)
        return (pretrained.resize_posemb_grid(value, grid, source),
                f"resized {value.shape} -> {shape} (grid {source} -> {grid})")
    raise IncompatibleCheckpointError(f"{key}: checkpoint {value.shape}, model {shape}; the "
                                      "checkpoint is a ViViT of another width or variant.")


def _fetch(key: str, shape: tuple, offered: Mapping[str, np.ndarray]) -> tuple[list, Any]:
    """Returns (the offered keys that make model param `key`, the value or None)."""
    match = _STACKED.match(key)
    if match is None:
        return ([key], offered[key]) if key in offered else ([], None)
    names = [f"{match[1]}/encoderblock_{i}/{match[2]}" for i in range(shape[0])]
    if not all(n in offered for n in names):
        return [], None
    return names, np.stack([offered[n] for n in names])


@registry.INIT_ADAPTERS.register("vivit.from_vivit")
def vivit_to_vivit(source: Mapping[str, np.ndarray], target: Mapping[str, Any], *,
                   token_grid: Sequence[int] = (), source_token_grid: Sequence[int] = (),
                   load_head: bool = False, allow_unused: Sequence[str] = (),
                   head_columns_last: int = 0,
                   ) -> tuple[dict[str, np.ndarray], dict[str, str], set[str]]:
    """Registry adapter "vivit.from_vivit" (module docstring): maps a ViViT checkpoint's flat
    params `source` onto ViViT param specs `target` ({key: shape-like}).

    Options: `token_grid` / `source_token_grid` ((t, h, w) of the model / checkpoint, for
    resizing models 1/3/4's joint position embedding), `load_head`, `allow_unused` (regexes
    of checkpoint keys that may stay unused), `head_columns_last` (with load_head: the
    checkpoint head's first that many classes move after the others; a Scenic Epic-Kitchens
    head is 300 nouns then 97 verbs, ours verbs then nouns: 300). Returns (values, notes,
    checkpoint keys read).
    """
    scenic = scenic_layout.is_scenic_vivit(source)
    if scenic:
        flat, origin = scenic_layout.from_scenic(source)
    else:
        flat, origin = dict(source), {k: (k,) for k in source}
    offered, origin = unstacked(flat, origin)
    grids = dict(token_grid=token_grid, source_token_grid=source_token_grid)
    values, notes, used, problems, missing = {}, {}, set(), [], []
    for key, spec in target.items():
        shape = tuple(spec.shape)
        if key.startswith(HEAD) and not load_head:
            notes[key] = "init (head: new classes; options.load_head=False)"
            continue
        names, value = _fetch(key, shape, offered)
        if value is None:
            missing.append(key)
            continue
        value = np.asarray(value)
        if key.startswith(HEAD) and head_columns_last:
            value = np.concatenate([value[..., head_columns_last:],
                                    value[..., :head_columns_last]], axis=-1)
        try:
            value, note = map_value(key, value, shape, target, grids)
        except IncompatibleCheckpointError as e:
            problems.append(str(e))
            continue
        if key.startswith(HEAD) and head_columns_last:
            note += f" (its first {head_columns_last} classes moved last)"
        values[key] = value.astype(spec.dtype)
        used.update(names)
        sources = sorted({o for n in names for o in origin[n]})
        if sources != [key]:
            note += f" from {' + '.join(sources) if len(sources) < 3 else sources[0] + ', ...'}"
        notes[key] = note
    # The classifier of the checkpoint's dataset (and its pre-logits, when the model has
    # none) is expected to go unused.
    dropped = HEAD + (() if any(k.startswith("pre_logits/") for k in target)
                      else ("pre_logits/",))
    allowed = [re.compile(p) for p in allow_unused]
    unused = sorted({o for k in offered if k not in used and not k.startswith(dropped)
                     for o in origin[k] if not any(p.search(o) for p in allowed)})
    _raise_if(problems, missing, unused, scenic)
    read = {o for n in used for o in origin[n]}
    return values, notes, read


def _raise_if(problems: list, missing: list, unused: list, scenic: bool) -> None:
    layout = "Scenic " if scenic else ""
    lines = []
    if problems:
        lines.append("shapes that cannot be reconciled:\n  " + "\n  ".join(problems))
    if missing:
        lines.append("model parameters the checkpoint does not hold (a model with more layers "
                     "or another variant; add them to config.init_from.dont_load to start "
                     "them at init):\n  " + "\n  ".join(missing))
    if unused:
        lines.append("checkpoint parameters the model has no place for (a checkpoint with "
                     "more layers or another variant; match config.model to it, or name them "
                     "in config.init_from.options.allow_unused to drop them):\n  "
                     + "\n  ".join(unused))
    if lines:
        raise IncompatibleCheckpointError(
            f"config.init_from (adapter 'vivit.from_vivit', a {layout}ViViT checkpoint): "
            + "\n".join(lines))
