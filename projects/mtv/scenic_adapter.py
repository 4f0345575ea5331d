"""Init adapter "mtv.from_scenic": a checkpoint of Scenic's MTV (e.g. its model zoo) on this MTV.

    python -m tools.convert_checkpoint --input mtv_b_k400/checkpoint \\
        --config projects/mtv/configs/kinetics400_mtv.py:B --adapter mtv_scenic \\
        --config.model.use_query_config=True --config.model.global_encoder.view_tiling=tile \\
        --output workdirs/mtv_b_k400_scenic
    python -m tools.eval --workdir workdirs/mtv_b_k400_scenic

For the same function as Scenic's model, the config must match the checkpoint's: the same
views and fusion layers, `use_query_config` as in its config (True in Scenic's released
configs) and `global_encoder.view_tiling='tile'` (Scenic tiles the views' class tokens in
time before the channel merge).

Names (Scenic -> Tessera; blocks have the same internals, big_vision's names):
- `MultiviewEncoder/posembed_input_view{i}/pos_embedding` (1, n, D), one frame's, shared by
  the frames of a segment -> `MultiviewEncoder/posembed_view{i}` (1, f * n, D), tiled;
- `MultiviewEncoder/cross_view_encoderblock_{l}/`: `msa_ln_view{i}`, `msa_view{i}`,
  `mlp_ln_view{i}`, `mlp_view{i}` -> `MultiviewEncoder/encoderblock_{l}_view{i}/`
  `LayerNorm_0`, `MultiHeadDotProductAttention_0`, `LayerNorm_1`, `MlpBlock_0`; and
  `cross_attention_view{i}_{i+1}` with the layer norms `cross_attention_ln_view{i}` (queries)
  and `cross_attention_ln_view{i+1}` (keys / values) -> `cross_attention_{l}_view{i}/`
  `MultiHeadDotProductAttention_0`, `LayerNorm_0`, `LayerNorm_1`;
- `bottleneck` -> `MultiviewEncoder/bottleneck`;
- `global_encoder/posembed_input/pos_embedding` -> `global_posembed`;
- everything else (`embedding_view{i}`, `cls_view{i}`, `encoderblock_{l}_view{i}`,
  `bottleneck_linear_{l}_view{i}`, `global_encoder/...`, `global_encoder_linear_view{i}`,
  `cls_global`, `output_projection`) keeps its name.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import numpy as np

from framework import registry
from framework.pretrained import IncompatibleCheckpointError

_CROSS_BLOCK = {"LayerNorm_0": "msa_ln_view{i}", "MultiHeadDotProductAttention_0": "msa_view{i}",
                "LayerNorm_1": "mlp_ln_view{i}", "MlpBlock_0": "mlp_view{i}"}
_CROSS_ATTENTION = {"LayerNorm_0": "cross_attention_ln_view{i}",
                    "LayerNorm_1": "cross_attention_ln_view{j}",
                    "MultiHeadDotProductAttention_0": "cross_attention_view{i}_{j}"}
_BLOCK = re.compile(r"^MultiviewEncoder/encoderblock_(\d+)_view(\d+)/([^/]+)/(.+)$")
_CVA = re.compile(r"^MultiviewEncoder/cross_attention_(\d+)_view(\d+)/([^/]+)/(.+)$")
_POSEMB = re.compile(r"^MultiviewEncoder/posembed_view(\d+)$")


def source_key(key: str, source: Mapping[str, Any]) -> str:
    """Returns the Scenic checkpoint key that Tessera MTV param `key` is read from (module
    docstring); `source` (the checkpoint) tells a plain view block from one inside a
    cross-view block. The key may be missing from `source`."""
    if match := _POSEMB.match(key):
        return f"MultiviewEncoder/posembed_input_view{match[1]}/pos_embedding"
    if key == "MultiviewEncoder/bottleneck":
        return "bottleneck"
    if key == "global_posembed":
        return "global_encoder/posembed_input/pos_embedding"
    if (match := _BLOCK.match(key)) and key not in source:
        layer, view, module, rest = match.groups()
        if module in _CROSS_BLOCK:
            name = _CROSS_BLOCK[module].format(i=view)
            return f"MultiviewEncoder/cross_view_encoderblock_{layer}/{name}/{rest}"
    if match := _CVA.match(key):
        layer, view, module, rest = match.groups()
        if module in _CROSS_ATTENTION:
            name = _CROSS_ATTENTION[module].format(i=view, j=int(view) + 1)
            return f"MultiviewEncoder/cross_view_encoderblock_{layer}/{name}/{rest}"
    return key


@registry.INIT_ADAPTERS.register("mtv.from_scenic", formerly=("mtv_scenic",))
def scenic_mtv_adapter(source: Mapping[str, np.ndarray],
                       target: Mapping[str, Any]) -> tuple[dict, dict, set]:
    """Registry adapter "mtv.from_scenic" (module docstring): maps a Scenic MTV checkpoint's flat
    params onto Tessera MTV param shapes `target` ({key: shape-like}). Returns (values,
    notes, the checkpoint keys read). Raises IncompatibleCheckpointError naming the key when
    a shape does not fit (other views, widths or `use_query_config` than the model's)."""
    values, notes, read = {}, {}, set()
    for key, spec in target.items():
        name = source_key(key, source)
        if name not in source:
            continue
        value, shape = np.asarray(source[name]), tuple(spec.shape)
        if _POSEMB.match(key) and value.ndim == 3 and shape[1] % value.shape[1] == 0:
            frames = shape[1] // value.shape[1]
            value = np.tile(value, (1, frames, 1))
            notes[key] = f"loaded from {name} {source[name].shape}, tiled over {frames} frames"
        elif name != key:
            notes[key] = f"loaded from {name}"
        if value.shape != shape:
            raise IncompatibleCheckpointError(
                f"Scenic MTV checkpoint key {name} has shape {value.shape}; the model's {key} "
                f"needs {shape}. Match the checkpoint's views, widths and use_query_config in "
                "config.model.")
        values[key] = value
        read.add(name)
    return values, notes, read
