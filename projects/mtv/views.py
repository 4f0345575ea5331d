"""MTV view specifications: one encoder size and one tubelet size per view.

The paper writes a model as views joined by '+', e.g. "B/2+S/4+Ti/8": a ViT-B encoder on
16x16x2 tubelets, a ViT-S on 16x16x4 and a ViT-Ti on 16x16x8. A view is
"SIZE/T" (16x16 spatial patches, T frames), "SIZE/PxT" (PxP patches) or "SIZE/PHxPWxT".
`parse_views` turns such a string into view dicts, the form the model takes
(`hidden_size`, `depth`, `mlp_dim`, `num_heads`, `tubelet` (t, h, w)), ordered from the
largest tubelet (fewest tokens, the "wide" view) to the smallest, the order fusion follows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from configs.model_sizes import VIT_SIZES

DEFAULT_PATCH = 16


class ViewSpec(NamedTuple):
    """One view: its encoder's shape and its tubelet (t, h, w)."""

    hidden_size: int
    depth: int
    mlp_dim: int
    num_heads: int
    tubelet: tuple[int, int, int]


def parse_view(text: str) -> dict[str, Any]:
    """Parses one view "SIZE/T", "SIZE/PxT" or "SIZE/PHxPWxT" (e.g. "B/2", "S/16x4") into a
    view dict. Raises ValueError naming the known sizes for a malformed view."""
    size, sep, tube = text.strip().partition("/")
    parts = tube.split("x") if sep else []
    if size not in VIT_SIZES or len(parts) not in (1, 2, 3) or not all(
            p.isdigit() and int(p) > 0 for p in parts):
        raise ValueError(
            f"MTV view {text!r}: expected SIZE/T, SIZE/PxT or SIZE/PHxPWxT with SIZE one of "
            f"{', '.join(VIT_SIZES)} and positive integers (e.g. 'B/2', 'S/16x4').")
    nums = [int(p) for p in parts]
    if len(nums) == 1:
        tubelet = (nums[0], DEFAULT_PATCH, DEFAULT_PATCH)
    elif len(nums) == 2:
        tubelet = (nums[1], nums[0], nums[0])
    else:
        tubelet = (nums[2], nums[0], nums[1])
    hidden_size, depth, mlp_dim, num_heads = VIT_SIZES[size]
    return dict(hidden_size=hidden_size, depth=depth, mlp_dim=mlp_dim, num_heads=num_heads,
                tubelet=tubelet)


def parse_views(variant: str) -> tuple[dict[str, Any], ...]:
    """Parses "B/2+S/4+Ti/8" into view dicts sorted from the largest temporal tubelet to the
    smallest (the paper's fusion order: view i attends to view i + 1, which has more
    tokens). Returns a tuple of dicts (see the module docstring)."""
    views = [parse_view(v) for v in variant.split("+")]
    return tuple(sorted(views, key=lambda v: -v["tubelet"][0]))


def view_specs(views: Sequence[Mapping[str, Any]]) -> tuple[ViewSpec, ...]:
    """Returns the ViewSpecs of view dicts (the model's `views` field).

    Raises ValueError naming the view and key when a key is missing or a value malformed.
    """
    if not views:
        raise ValueError("config.model.views: needs at least one view (e.g. "
                         "parse_views('B/2+S/4+Ti/8')).")
    specs = []
    for i, view in enumerate(views):
        try:
            tubelet = tuple(int(t) for t in view["tubelet"])
            spec = ViewSpec(int(view["hidden_size"]), int(view["depth"]), int(view["mlp_dim"]),
                            int(view["num_heads"]), tubelet)
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(
                f"config.model.views[{i}]={dict(view)!r}: needs hidden_size, depth, mlp_dim, "
                f"num_heads and tubelet (t, h, w) ({type(e).__name__}: {e}).") from None
        if len(tubelet) != 3 or spec.hidden_size % spec.num_heads:
            raise ValueError(f"config.model.views[{i}]: tubelet must be (t, h, w) and "
                             f"num_heads must divide hidden_size; got {spec}.")
        specs.append(spec)
    return tuple(specs)
