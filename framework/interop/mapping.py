"""Rules that rename and re-lay parameters between Tessera and another library, both ways.

A `Rule` ties one or more of our flat params ("Transformer/encoderblock_0/.../kernel") to one
or more of theirs ("vit.encoder.layer.0...weight") with a transform each way. Attention
projections are exchanged in the 2D layout other libraries use: ours (D, H, Dh) query / key /
value kernels, (H, Dh) biases and (H, Dh, D) out kernels are flattened before export
(`flatten_heads`), and on import the 2D arrays reach the model through `map_default`, which
splits the heads to the model's shape and notes it as "reshaped" (`reshape_heads`).

`import_params` applies rules to their flat dict and returns a `Converted` dict in our names
whose `notes` say where each came from and whose `unknown` lists their keys no rule took;
`export_params` applies the rules the other way. A checkpoint missing keys a rule needs, or
holding arrays of the wrong rank, raises `MappingError` naming the keys.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from framework.registry import ConfigError

Arrays = list[np.ndarray]


class MappingError(ConfigError):
    """A checkpoint lacks keys its model needs or holds arrays of an unexpected layout."""


@dataclasses.dataclass(frozen=True)
class Rule:
    """Our keys `ours` <-> their keys `theirs`; `to_ours` / `to_theirs` map the arrays (in
    key order) each way; `how` says what is done (used in load-report notes)."""

    ours: tuple[str, ...]
    theirs: tuple[str, ...]
    how: str
    to_ours: Callable[[Arrays], Arrays]
    to_theirs: Callable[[Arrays], Arrays]


class Converted(dict):
    """{our key: np.ndarray} from another library's checkpoint, with `notes` {our key: where
    it came from} and `unknown` (their keys no rule took), read by the load report."""

    def __init__(self, values: Mapping[str, np.ndarray], notes: Mapping[str, str],
                 unknown: Sequence[str]):
        super().__init__(values)
        self.notes = dict(notes)
        self.unknown = list(unknown)


def _rank(arrays: Arrays, ranks: Sequence[int]) -> None:
    for array, rank in zip(arrays, ranks):
        if array.ndim != rank:
            raise ValueError(f"expected a {rank}-D array, got shape {array.shape}")


def copy(ours: str, theirs: str, how: str = "copied") -> Rule:
    """Same array both ways."""
    return Rule((ours,), (theirs,), how, lambda a: [a[0]], lambda a: [a[0]])


def linear(ours: str, theirs: str, bias: bool = True) -> list[Rule]:
    """A dense layer: our `ours/kernel` (in, out) <-> their `theirs.weight` (out, in), and
    `ours/bias` <-> `theirs.bias`."""

    def transpose(a: Arrays) -> Arrays:
        _rank(a, (2,))
        return [a[0].T]

    rules = [Rule((f"{ours}/kernel",), (f"{theirs}.weight",), "transposed", transpose,
                  transpose)]
    return rules + ([copy(f"{ours}/bias", f"{theirs}.bias")] if bias else [])


def norm(ours: str, theirs: str) -> list[Rule]:
    """A LayerNorm: `ours/scale` <-> `theirs.weight`, `ours/bias` <-> `theirs.bias`."""
    return [copy(f"{ours}/scale", f"{theirs}.weight"), copy(f"{ours}/bias", f"{theirs}.bias")]


def conv(ours: str, theirs: str) -> list[Rule]:
    """A patch / tubelet embedding: our kernel (*window, C, D) <-> their (D, C, *window)
    (2D or 3D), and the bias."""

    def to_ours(a: Arrays) -> Arrays:
        if a[0].ndim not in (4, 5):
            raise ValueError(f"expected a conv weight (D, C, *window), got shape {a[0].shape}")
        n = a[0].ndim
        return [a[0].transpose(*range(2, n), 1, 0)]

    def to_theirs(a: Arrays) -> Arrays:
        n = a[0].ndim
        return [a[0].transpose(n - 1, n - 2, *range(n - 2))]

    return [Rule((f"{ours}/kernel",), (f"{theirs}.weight",), "transposed (conv)", to_ours,
                 to_theirs), copy(f"{ours}/bias", f"{theirs}.bias")]


def fused_linear(ours: Sequence[str], weight: str, bias: str) -> list[Rule]:
    """Projections stored fused by them (q, k, v rows stacked: `weight` (n*out, in), `bias`
    (n*out,)) and apart by us (`ours[i]/kernel` (in, out), `ours[i]/bias`)."""
    count = len(ours)

    def split(transpose: bool) -> Callable[[Arrays], Arrays]:
        def fn(a: Arrays) -> Arrays:
            if a[0].shape[0] % count:
                raise ValueError(f"{a[0].shape[0]} rows do not split into {count} parts")
            parts = np.split(a[0], count, axis=0)
            return [p.T for p in parts] if transpose else parts
        return fn

    def join(transpose: bool) -> Callable[[Arrays], Arrays]:
        return lambda a: [np.concatenate([p.T if transpose else p for p in a], axis=0)]

    return [
        Rule(tuple(f"{o}/kernel" for o in ours), (weight,), f"split {count} ways, transposed",
             split(True), join(True)),
        Rule(tuple(f"{o}/bias" for o in ours), (bias,), f"split {count} ways", split(False),
             join(False)),
    ]


def posemb_with_cls(ours_cls: str, ours_posemb: str, theirs_cls: str,
                    theirs_posemb: str) -> Rule:
    """Their class token (1, 1, D) and position embedding over [cls, patches] (1, 1 + N, D)
    <-> our class token and position embedding over the patches only (1, N, D).

    Both add the embedding before the encoder, so their cls + posemb[:, 0] is our cls; on
    export the class token's row is zero."""

    def to_ours(a: Arrays) -> Arrays:
        cls, posemb = a
        _rank(a, (3, 3))
        return [cls + posemb[:, :1], posemb[:, 1:]]

    def to_theirs(a: Arrays) -> Arrays:
        cls, posemb = a
        return [cls, np.concatenate([np.zeros_like(cls), posemb], axis=1)]

    return Rule((ours_cls, ours_posemb), (theirs_cls, theirs_posemb),
                "class-token row folded into cls", to_ours, to_theirs)


def scalar(ours: str, theirs: str) -> Rule:
    """Their scalar () <-> our (1,) (e.g. open_clip's logit_scale and our `t`)."""
    return Rule((ours,), (theirs,), "reshaped scalar", lambda a: [a[0].reshape(1)],
                lambda a: [a[0].reshape(())])


def prefixed(rules: Sequence[Rule], ours: str, theirs: str) -> list[Rule]:
    """Returns `rules` with `ours` / `theirs` put before their keys (a model's rules reused
    for a tower of a bigger one)."""
    return [dataclasses.replace(r, ours=tuple(ours + k for k in r.ours),
                                theirs=tuple(theirs + k for k in r.theirs)) for r in rules]


def posemb_table(ours: str, theirs: str) -> Rule:
    """Their position-embedding table (N, D) <-> our (1, N, D)."""

    def to_ours(a: Arrays) -> Arrays:
        _rank(a, (2,))
        return [a[0][None]]

    return Rule((ours,), (theirs,), "batch axis added", to_ours, lambda a: [a[0][0]])


def encoder_block(ours: str, theirs: str, names: Mapping[str, Any]) -> list[Rule]:
    """Rules of one pre-LN transformer block: ours `.../encoderblock_{i}` (LayerNorm_0,
    MultiHeadDotProductAttention_0, LayerNorm_1, MlpBlock_0), theirs under `theirs` with
    sub-names `names`: 'norm1', 'norm2', 'out', 'fc1', 'fc2' (module names) and either
    'query' / 'key' / 'value' (apart) or 'qkv' = (weight key, bias key) (fused)."""
    attention = f"{ours}/MultiHeadDotProductAttention_0"
    rules = norm(f"{ours}/LayerNorm_0", f"{theirs}.{names['norm1']}")
    if "qkv" in names:
        weight, bias = names["qkv"]
        rules += fused_linear([f"{attention}/{n}" for n in ("query", "key", "value")],
                              f"{theirs}.{weight}", f"{theirs}.{bias}")
    else:
        for name in ("query", "key", "value"):
            rules += linear(f"{attention}/{name}", f"{theirs}.{names[name]}")
    return rules + [
        *linear(f"{attention}/out", f"{theirs}.{names['out']}"),
        *norm(f"{ours}/LayerNorm_1", f"{theirs}.{names['norm2']}"),
        *linear(f"{ours}/MlpBlock_0/Dense_0", f"{theirs}.{names['fc1']}"),
        *linear(f"{ours}/MlpBlock_0/Dense_1", f"{theirs}.{names['fc2']}"),
    ]


# ---------------------------------------------------------------------------------------
# Attention heads.

_QKV = re.compile(r"(^|/)(query|key|value)/(kernel|bias)$")
_OUT = re.compile(r"(^|/)out/kernel$")


def flatten_heads(flat: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Returns `flat` with attention projections in 2D: query / key / value kernels
    (D, H, Dh) -> (D, H*Dh) and biases (H, Dh) -> (H*Dh,); out kernels (H, Dh, D) ->
    (H*Dh, D)."""
    out = {}
    for key, value in flat.items():
        value = np.asarray(value)
        if _QKV.search(key) and key.endswith("kernel") and value.ndim == 3:
            value = value.reshape(value.shape[0], -1)
        elif _QKV.search(key) and key.endswith("bias") and value.ndim == 2:
            value = value.reshape(-1)
        elif _OUT.search(key) and value.ndim == 3:
            value = value.reshape(-1, value.shape[-1])
        out[key] = value
    return out


def reshape_heads(key: str, value: np.ndarray, shape: tuple[int, ...]) -> np.ndarray | None:
    """Returns 2D attention param `value` split to the model's head layout `shape` (the
    inverse of `flatten_heads`; a leading layer axis of a scanned model may come along), or
    None when `key` is no attention param or the sizes do not fit."""
    shape, have = tuple(shape), tuple(value.shape)
    if len(shape) != len(have) + 1:
        return None
    if _QKV.search(key):  # (..., H*Dh) -> (..., H, Dh)
        fits = have[:-1] == shape[:-2] and have[-1] == shape[-2] * shape[-1]
    elif _OUT.search(key):  # (..., H*Dh, D) -> (..., H, Dh, D)
        fits = (have[:-2] == shape[:-3] and have[-2] == shape[-3] * shape[-2]
                and have[-1] == shape[-1])
    else:
        return None
    return value.reshape(shape) if fits else None


# ---------------------------------------------------------------------------------------
# Applying rules.


def import_params(theirs: Mapping[str, np.ndarray], rules: Sequence[Rule],
                  source: str) -> Converted:
    """Maps their flat checkpoint `theirs` {key: array} to our names by `rules`.

    Returns a Converted dict (notes: "<how> from <their key>"; unknown: their keys no rule
    read). Raises MappingError naming `source` and the keys when a rule's keys are missing
    or an array has the wrong layout.
    """
    missing = [k for rule in rules for k in rule.theirs if k not in theirs]
    if missing:
        raise MappingError(
            f"{source}: the checkpoint lacks {len(missing)} parameters its config needs: "
            f"{', '.join(missing[:6])}{' ...' if len(missing) > 6 else ''} (a partial or "
            "mismatched checkpoint; nothing was loaded).")
    values, notes, problems, read = {}, {}, [], set()
    for rule in rules:
        arrays = [np.asarray(theirs[k]) for k in rule.theirs]
        try:
            mapped = rule.to_ours(arrays)
        except ValueError as e:
            problems.append(f"{', '.join(rule.theirs)}: {e}")
            continue
        read.update(rule.theirs)
        for key, value in zip(rule.ours, mapped):
            values[key] = value
            notes[key] = f"{rule.how} from {' + '.join(rule.theirs)}"
    if problems:
        raise MappingError(f"{source}: parameters with an unexpected layout: "
                           f"{'; '.join(problems)}.")
    return Converted(values, notes, sorted(set(theirs) - read))


def export_params(ours: Mapping[str, np.ndarray], rules: Sequence[Rule],
                  what: str) -> dict[str, np.ndarray]:
    """Maps our flat params `ours` to their names by `rules` (attention heads flattened).

    Returns {their key: array}. Raises MappingError naming `what` and the keys when params a
    rule needs are missing, or when `ours` holds params no rule exports (they would be lost).
    """
    flat = flatten_heads(unstack_scanned(ours))
    missing = [k for rule in rules for k in rule.ours if k not in flat]
    used = {k for rule in rules for k in rule.ours}
    extra = sorted(set(flat) - used)
    if missing or extra:
        parts = ([f"lacks {', '.join(missing[:6])}"] if missing else []) + (
            [f"has parameters the format cannot hold: {', '.join(extra[:6])}"] if extra else [])
        raise MappingError(f"cannot export as {what}: the model {'; '.join(parts)}.")
    out = {}
    for rule in rules:
        for key, value in zip(rule.theirs, rule.to_theirs([flat[k] for k in rule.ours])):
            out[key] = np.ascontiguousarray(value, dtype=np.float32)
    return out


def unstack_scanned(flat: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Returns `flat` (numpy) with every scanned `X/encoderblock/Y` (L, ...) replaced by
    `X/encoderblock_{i}/Y` for i < L."""
    from framework.pretrained import unstack_layers

    return {k: np.asarray(v) for k, v in unstack_layers(flat).items()
            if "/encoderblock/" not in k}


def count_layers(keys: Sequence[str], pattern: str) -> int:
    """Returns 1 + the largest layer index that regex `pattern` (one group: the index) finds
    among `keys`, or 0."""
    regex = re.compile(pattern)
    found = [int(m[1]) for k in keys if (m := regex.match(k))]
    return max(found) + 1 if found else 0
