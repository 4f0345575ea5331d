"""Preprocessing strings: "op1(k=v, ...)|op2|..." -> one picklable chain of registered ops.

`config.data.<split>.preprocess` names per-example ops and `config.data.<split>.batch_preprocess`
batch ops, all registered in `framework.registry.PREPROCESS_OPS` (the catalog is in the
docstring of `framework.data.ops`). Arguments are Python literals, by keyword or in the order
of the op's parameters: "resize_small(256)|random_crop(size=224)|flip_lr".

An op factory takes its keyword arguments and returns a picklable callable
`op(example: dict, rng: np.random.Generator) -> dict`. The pipelines hand every example (and
every batch) its own generator, derived from the seed and the example's position, so a resumed
run draws the same augmentations.

Multi-view ops (clips of a video, spatial crops) have a `num_views` attribute > 1. A chain's
views are numbered clip-major, in the order of the ops: with `sample_clips(num_clips=4)` then
`three_crop`, view = clip * 3 + crop. The eval pipeline sets `view_index` on each copy of an
example; each multi-view op reads its own digit of it with `view_digit`.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from framework import registry
from framework.registry import ConfigError


class PreprocessError(ValueError):
    """An op failed on an example; the message names the op."""


@dataclasses.dataclass
class MultiViewOp:
    """Base of ops that make `num_views` views of an example (set by the subclass).

    `view_stride` is filled in by `build_chain`: the product of the `num_views` of the
    multi-view ops after this one in the chain.
    """

    view_stride: int = dataclasses.field(default=1, init=False, repr=False)

    @property
    def num_views(self) -> int:
        """Returns how many views this op makes (1 = not multi-view)."""
        return 1

    def view_digit(self, example: dict) -> int:
        """Returns this op's view number in [0, num_views) from example['view_index']
        (0 when the example has none, e.g. in training)."""
        view = int(np.asarray(example.get("view_index", 0)))
        return (view // self.view_stride) % self.num_views


@dataclasses.dataclass
class Chain:
    """The ops of one preprocess string, applied in order.

    Called with (example dict, rng); returns the example after the last op with values that
    are not numeric arrays (bytes, str, lists of encoded frames) dropped, so that it batches.
    `num_views` is the number of views the chain makes of each example.
    """

    text: str
    names: tuple[str, ...]
    ops: tuple[Callable[[dict, np.random.Generator], dict], ...]

    @property
    def num_views(self) -> int:
        """Returns the product of the multi-view ops' num_views (1 without such ops)."""
        return int(np.prod([getattr(op, "num_views", 1) for op in self.ops], dtype=np.int64))

    def __call__(self, example: dict, rng: np.random.Generator) -> dict:
        for name, op in zip(self.names, self.ops):
            try:
                example = op(example, rng)
            except Exception as e:  # noqa: BLE001 - re-raised with the op's name.
                raise PreprocessError(f"preprocess op {name!r} failed: "
                                      f"{type(e).__name__}: {e}") from e
        return {k: v for k, v in example.items() if _is_numeric(v)}


def _is_numeric(value: Any) -> bool:
    return isinstance(value, np.ndarray | np.generic | int | float | bool) and (
        np.asarray(value).dtype.kind in "biuf")


def parse(text: str, config_key: str) -> list[tuple[str, tuple, dict]]:
    """Parses "op1(a, k=v)|project.op2" into [(name, positional args, keyword args), ...].

    Raises ConfigError naming `config_key` when a part is not `name` or `name(literals)`.
    """
    parts = []
    for part in _split_top_level(text or ""):
        part = part.strip()
        if not part:
            continue
        try:
            node = ast.parse(part, mode="eval").body
            if _dotted_name(node):
                parts.append((_dotted_name(node), (), {}))
                continue
            if not isinstance(node, ast.Call) or not _dotted_name(node.func):
                raise ValueError("expected name or name(args)")
            args = tuple(ast.literal_eval(a) for a in node.args)
            kwargs = {k.arg: ast.literal_eval(k.value) for k in node.keywords}
            if None in kwargs:
                raise ValueError("**kwargs are not allowed")
        except (SyntaxError, ValueError) as e:
            raise ConfigError(f"{config_key}: cannot parse op {part!r} ({e}); write "
                              "'name' or 'name(arg, key=value)' with Python literals, "
                              "separated by '|'.") from None
        parts.append((_dotted_name(node.func), args, kwargs))
    return parts


def _dotted_name(node: ast.AST) -> str:
    """Returns "a.b.c" for the expression node of a (dotted) name, else ""."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute) and _dotted_name(node.value):
        return f"{_dotted_name(node.value)}.{node.attr}"
    return ""


def _split_top_level(text: str) -> list[str]:
    """Splits at '|' outside brackets and quotes."""
    parts, depth, quote, start = [], 0, None, 0
    for i, ch in enumerate(text):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "|" and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return parts


def build_chain(text: str, config_key: str,
                defaults: Mapping[str, Any] | None = None) -> Chain | None:
    """Builds the Chain of a preprocess string (None for an empty string).

    `defaults` are keyword arguments given to every op that accepts them and was not given
    them in the string (e.g. num_classes for mixup). Unknown op names and arguments are
    ConfigErrors naming `config_key`.
    """
    parsed = parse(text, config_key)
    if not parsed:
        return None
    ops = []
    for index, (name, args, kwargs) in enumerate(parsed):
        key = f"{config_key}[{index}]"
        factory = registry.PREPROCESS_OPS.get(name, config_key)
        kwargs = _bind_positional(factory, name, args, kwargs, key)
        registry.check_kwargs(factory, kwargs, key, f"preprocess op {name!r}")
        accepted, _ = registry.accepted_kwargs(factory)
        for default_key, value in (defaults or {}).items():
            if default_key in accepted and default_key not in kwargs:
                kwargs[default_key] = value
        try:
            ops.append(factory(**kwargs))
        except (TypeError, ValueError) as e:
            raise ConfigError(f"{key}: preprocess op {name!r}: {e}") from None
    stride = 1
    for op in reversed(ops):
        if isinstance(op, MultiViewOp):
            op.view_stride = stride
            stride *= op.num_views
    return Chain(text=text, names=tuple(p[0] for p in parsed), ops=tuple(ops))


def _bind_positional(factory, name: str, args: tuple, kwargs: dict, key: str) -> dict:
    if not args:
        return dict(kwargs)
    if inspect.isclass(factory) and dataclasses.is_dataclass(factory):
        order = [f.name for f in dataclasses.fields(factory) if f.init and not f.kw_only]
    else:
        order = [p.name for p in inspect.signature(factory).parameters.values()
                 if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if len(args) > len(order):
        raise ConfigError(f"{key}: preprocess op {name!r} takes at most {len(order)} "
                          f"positional arguments ({', '.join(order)}), got {len(args)}.")
    bound = dict(zip(order, args))
    clash = sorted(set(bound) & set(kwargs))
    if clash:
        raise ConfigError(f"{key}: preprocess op {name!r} got {clash[0]!r} twice.")
    return {**bound, **kwargs}


def view_rng(seed: int, index: int, view: int) -> np.random.Generator:
    """Returns the generator for view `view` of record `index` in a deterministic pass."""
    return np.random.default_rng([int(seed), int(index), int(view)])
