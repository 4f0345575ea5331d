"""Optimizers and learning-rate schedules from config: optax chains with freezing, per-parameter
learning-rate multipliers, decoupled weight decay and global-norm gradient clipping.

The update of a trainable parameter `p` with gradient `g`, after `t` earlier updates, is

    g' = clip_by_global_norm(g)           trainable params only; optional (grad_clip_norm)
    u  = base(g')                         sgd momentum / adam / adafactor statistics
    u  = u + weight_decay * p             only for decayed params (weight_decay_mask)
    p <- p - lr_mult(p) * lr(t) * u       lr(t) = the schedule, which includes the peak lr

so weight decay is multiplied by the full learning rate (peak lr times schedule, times the
param's lr multiplier): the optax.adamw convention. big_vision's configs often multiply `wd`
by the schedule only; such a `wd` converts as `weight_decay = wd / lr`.

Frozen params (`freeze`, or an lr multiplier of 0) get exactly zero updates, hold no optimizer
state (their place in the state tree is an `optax.MaskedNode`) and do not count in the global
norm that is clipped.

Param paths are the '/'-joined key names of the param tree, as Flax Linen names them:
'Transformer/encoderblock_0/MlpBlock_0/Dense_0/kernel'. Regexes in the config are matched with
`re.search` (anywhere in the path); anchor them with ^ and $ for an exact match.
"""

from __future__ import annotations

import difflib
import logging
import math
import re
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import optax

from framework.registry import ConfigError
from framework.trees import path_name, unbox

log = logging.getLogger(__name__)

Schedule = Callable[[Any], jax.Array]

# Keys every optimizer accepts, with their defaults (lr is required).
_COMMON_KEYS: dict[str, Any] = {
    "name": None,
    "lr": None,
    "weight_decay": 0.0,
    "weight_decay_mask": None,
    "grad_clip_norm": None,
    "freeze": (),
    "lr_mults": (),
    "grad_accum_steps": 1,  # Read by the trainer, ignored here.
}
# Keys of each optimizer, with their defaults.
OPTIMIZER_KEYS: dict[str, dict[str, Any]] = {
    "sgd": {"momentum": 0.9, "nesterov": False, "momentum_dtype": None},
    "adamw": {"b1": 0.9, "b2": 0.999, "eps": 1e-8, "mu_dtype": None},
    "adafactor": {
        "b1": 0.9,  # Momentum (an EMA of the scaled updates, not debiased); None or 0 = off.
        "momentum_dtype": "bfloat16",
        "decay_rate": 0.8,  # Second-moment decay 1 - (t + 1) ** -decay_rate ...
        "beta2_cap": 0.999,  # ... capped at beta2_cap.
        "decay_offset": 0,
        "eps": 1e-30,
        "clipping_threshold": None,  # Per-param update RMS clipping; None = off.
        "min_dim_size_to_factor": 32,
    },
}
_SCHEDULE_COMMON_KEYS: dict[str, Any] = {"name": None, "warmup_steps": 0}
# Keys of each schedule, with their defaults.
SCHEDULE_KEYS: dict[str, dict[str, Any]] = {
    "cosine": {"end_lr_ratio": 0.0},
    "linear": {"end_lr_ratio": 0.0},
    "rsqrt": {"timescale": 10_000, "cooldown_steps": 0},
    "constant": {},
}


def make_optimizer(
    optimizer_config: Any,
    schedule_config: Any,
    total_steps: int,
    params: Any = None,
) -> tuple[optax.GradientTransformation, Schedule]:
    """Builds the optax transformation and the learning-rate schedule from config.

    Takes `config.optimizer` and `config.schedule` (ConfigDicts or mappings; keys and
    defaults in OPTIMIZER_KEYS / SCHEDULE_KEYS and the module docstring), the number of
    training steps the schedule spans, and the (possibly abstract or boxed) param tree, used
    only to warn about regexes that match no param. Returns `(tx, schedule)`, where
    `schedule(step) -> lr` (a float32 scalar, the peak lr included) is what `tx` applies at
    update `step` (counting from 0). Raises ConfigError for unknown names or keys and bad
    values, naming the config key.
    """
    cfg = _resolve(optimizer_config, "config.optimizer", "optimizer", OPTIMIZER_KEYS,
                   _COMMON_KEYS)
    name = cfg["name"]
    if cfg["lr"] is None:
        raise ConfigError("config.optimizer.lr: required (the peak learning rate).")
    lr = _number(cfg, "lr", "config.optimizer")
    weight_decay = _number(cfg, "weight_decay", "config.optimizer")
    clip = _number(cfg, "grad_clip_norm", "config.optimizer", allow_none=True)
    groups = ParamGroups(cfg)
    if params is not None:
        groups.warn_unmatched(params)
    schedule = make_schedule(schedule_config, lr, total_steps)

    train_tx = optax.chain(
        *([optax.clip_by_global_norm(clip)] if clip else []),
        _base_transform(name, cfg),
    )
    tx = optax.chain(
        optax.multi_transform({"train": train_tx, "frozen": optax.set_to_zero()},
                              groups.labels),
        *([optax.add_decayed_weights(weight_decay, groups.decay_mask)] if weight_decay else []),
        optax.scale_by_learning_rate(schedule),
        _scale_by_lr_mults(groups),
    )
    return tx, schedule


def make_schedule(schedule_config: Any, peak_lr: float, total_steps: int) -> Schedule:
    """Returns `schedule(step) -> lr` (float32 scalar) for `config.schedule`.

    All schedules warm up linearly from 0 at step 0 to `peak_lr` at `warmup_steps`, then:
    'cosine' / 'linear' decay to `end_lr_ratio * peak_lr` at `total_steps`; 'rsqrt' is
    `peak_lr * sqrt(timescale / (step - warmup_steps + timescale))`, optionally times a linear
    cooldown to 0 over the last `cooldown_steps`; 'constant' stays at `peak_lr`.
    Works on Python ints and traced int arrays.
    """
    cfg = _resolve(schedule_config, "config.schedule", "schedule", SCHEDULE_KEYS,
                   _SCHEDULE_COMMON_KEYS)
    name = cfg["name"]
    if not isinstance(total_steps, int) or total_steps <= 0:
        raise ConfigError(f"config.total_steps={total_steps!r}: must be a positive int.")
    warmup = _int(cfg, "warmup_steps", "config.schedule")
    if warmup > total_steps:
        raise ConfigError(f"config.schedule.warmup_steps={warmup} is more than "
                          f"config.total_steps={total_steps}.")
    end_ratio = _number(cfg, "end_lr_ratio", "config.schedule") if "end_lr_ratio" in cfg else 0.0
    timescale = _int(cfg, "timescale", "config.schedule") if name == "rsqrt" else 1
    cooldown = _int(cfg, "cooldown_steps", "config.schedule") if name == "rsqrt" else 0
    if name == "rsqrt" and timescale <= 0:
        raise ConfigError(f"config.schedule.timescale={timescale}: must be positive.")
    if cooldown > total_steps:
        raise ConfigError(f"config.schedule.cooldown_steps={cooldown} is more than "
                          f"config.total_steps={total_steps}.")
    decay_steps = max(total_steps - warmup, 1)

    def schedule(step: Any) -> jax.Array:
        t = jnp.asarray(step, jnp.float32)
        factor = jnp.ones((), jnp.float32)
        if name in ("cosine", "linear"):
            progress = jnp.clip((t - warmup) / decay_steps, 0.0, 1.0)
            if name == "cosine":
                decay = 0.5 * (1.0 + jnp.cos(jnp.pi * progress))
            else:
                decay = 1.0 - progress
            factor = end_ratio + (1.0 - end_ratio) * decay
        elif name == "rsqrt":
            factor = jnp.sqrt(timescale / jnp.maximum(t - warmup + timescale, timescale))
            if cooldown:
                factor = factor * jnp.clip((total_steps - t) / cooldown, 0.0, 1.0)
        if warmup:
            factor = factor * jnp.minimum(t / warmup, 1.0)
        return (peak_lr * factor).astype(jnp.float32)

    return schedule


def param_paths(tree: Any) -> Any:
    """Returns a tree like `tree` (unboxed) whose leaves are the leaves' '/'-joined paths."""
    return jax.tree_util.tree_map_with_path(lambda path, _: path_name(path), unbox(tree))


class ParamGroups:
    """Which params are frozen, which are decayed and each one's lr multiplier, by path.

    Built from the resolved optimizer keys `freeze`, `lr_mults` and `weight_decay_mask`.
    """

    def __init__(self, cfg: Mapping[str, Any]):
        """Takes the optimizer config (a mapping); raises ConfigError for malformed entries."""
        where = "config.optimizer"
        self.freeze = [_regex(p, f"{where}.freeze") for p in _as_tuple(cfg.get("freeze"))]
        self.lr_mults = []
        for i, pair in enumerate(_as_tuple(cfg.get("lr_mults"))):
            key = f"{where}.lr_mults[{i}]"
            if (not isinstance(pair, (tuple, list)) or len(pair) != 2
                    or not isinstance(pair[1], (int, float)) or isinstance(pair[1], bool)
                    or pair[1] < 0):
                raise ConfigError(f"{key}={pair!r}: expected a (regex, multiplier >= 0) pair.")
            self.lr_mults.append((_regex(pair[0], key), float(pair[1])))
        mask = cfg.get("weight_decay_mask")
        self.decay_patterns = (None if mask is None else
                               [_regex(p, f"{where}.weight_decay_mask") for p in _as_tuple(mask)])

    def mult(self, path: str) -> float:
        """Returns the lr multiplier of the param at `path` (0.0 when it is frozen)."""
        if any(p.search(path) for p in self.freeze):
            return 0.0
        for pattern, value in self.lr_mults:
            if pattern.search(path):
                return value
        return 1.0

    def decayed(self, path: str, ndim: int) -> bool:
        """Whether weight decay applies to the param at `path` with `ndim` dims.

        Default (no weight_decay_mask): params named 'kernel' with ndim >= 2 only. Frozen
        params are never decayed.
        """
        if self.mult(path) == 0.0:
            return False
        if self.decay_patterns is None:
            return path.rsplit("/", 1)[-1] == "kernel" and ndim >= 2
        return any(p.search(path) for p in self.decay_patterns)

    def labels(self, tree: Any) -> Any:
        """Returns a tree of 'train' / 'frozen' labels for a param-shaped tree."""
        return jax.tree_util.tree_map_with_path(
            lambda path, _: "frozen" if self.mult(path_name(path)) == 0.0 else "train", tree)

    def decay_mask(self, tree: Any) -> Any:
        """Returns a tree of bools (True = decayed) for a param-shaped tree."""
        return jax.tree_util.tree_map_with_path(
            lambda path, x: self.decayed(path_name(path), len(_shape(x))), tree)

    def warn_unmatched(self, params: Any) -> None:
        """Logs a warning for each freeze / lr_mults / weight_decay_mask regex no path matches."""
        paths = jax.tree.leaves(param_paths(params))
        named = [("freeze", p) for p in self.freeze]
        named += [("lr_mults", p) for p, _ in self.lr_mults]
        named += [("weight_decay_mask", p) for p in self.decay_patterns or []]
        for key, pattern in named:
            if not any(pattern.search(path) for path in paths):
                log.warning("config.optimizer.%s: %r matches no parameter.", key, pattern.pattern)


def describe_param_groups(params: Any, optimizer_config: Any) -> str:
    """Returns a text table of every param: path, shape, size, lr multiplier, decayed or not.

    Takes the (possibly abstract or boxed) param tree and `config.optimizer`; frozen params
    show 'frozen' in the lr_mult column. Ends with totals of trainable / frozen / decayed params.
    """
    cfg = _resolve(optimizer_config, "config.optimizer", "optimizer", OPTIMIZER_KEYS,
                   _COMMON_KEYS)
    groups = ParamGroups(cfg)
    decays = bool(cfg["weight_decay"])
    leaves = jax.tree_util.tree_flatten_with_path(unbox(params))[0]
    rows, trainable, frozen, decayed = [], 0, 0, 0
    for path, leaf in leaves:
        name, shape = path_name(path), _shape(leaf)
        size, mult = math.prod(shape), groups.mult(name)
        decay = decays and groups.decayed(name, len(shape))
        trainable += size if mult else 0
        frozen += 0 if mult else size
        decayed += size if decay else 0
        rows.append((name, str(shape), f"{size:,}", f"{mult:g}" if mult else "frozen",
                     "yes" if decay else "no"))
    header = ("param", "shape", "size", "lr_mult", "decay")
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in
                       enumerate(zip(row, widths))) for row in [header] + rows]
    lines.append(f"total {trainable + frozen:,} params: {trainable:,} trainable "
                 f"({decayed:,} decayed, weight_decay={cfg['weight_decay']:g}), "
                 f"{frozen:,} frozen")
    return "\n".join(lines)


def _base_transform(name: str, cfg: Mapping[str, Any]) -> optax.GradientTransformation:
    where = "config.optimizer"
    if name == "sgd":
        momentum = _number(cfg, "momentum", where, allow_none=True)
        if not momentum:
            return optax.identity()
        return optax.trace(decay=momentum, nesterov=bool(cfg["nesterov"]),
                           accumulator_dtype=_dtype(cfg, "momentum_dtype"))
    if name == "adamw":
        return optax.scale_by_adam(
            b1=_number(cfg, "b1", where), b2=_number(cfg, "b2", where),
            eps=_number(cfg, "eps", where), mu_dtype=_dtype(cfg, "mu_dtype"))
    # Adafactor as in "Scaling Vision Transformers" (big_vision): factored second moments with
    # decay 1 - (t + 1) ** -decay_rate capped at beta2_cap, then optional update clipping by
    # block RMS and optional momentum kept in momentum_dtype.
    exponent, cap = _number(cfg, "decay_rate", where), _number(cfg, "beta2_cap", where)

    def decay_rate_fn(step, decay_rate):
        t = jnp.asarray(step, jnp.float32) + 1.0
        return jnp.minimum(cap, 1.0 - t ** (-decay_rate))

    b1 = _number(cfg, "b1", where, allow_none=True)
    threshold = _number(cfg, "clipping_threshold", where, allow_none=True)
    return optax.chain(
        optax.scale_by_factored_rms(
            factored=True, decay_rate=exponent, step_offset=_int(cfg, "decay_offset", where),
            min_dim_size_to_factor=_int(cfg, "min_dim_size_to_factor", where),
            epsilon=_number(cfg, "eps", where), decay_rate_fn=decay_rate_fn),
        *([optax.clip_by_block_rms(threshold)] if threshold else []),
        *([optax.ema(b1, debias=False, accumulator_dtype=_dtype(cfg, "momentum_dtype"))]
          if b1 else []),
    )


def _scale_by_lr_mults(groups: ParamGroups) -> optax.GradientTransformation:
    """Multiplies each update by its param's lr multiplier; frozen params get exact zeros."""

    def update(updates, state, params=None):
        del params

        def one(path, u):
            mult = groups.mult(path_name(path))
            if mult == 0.0:
                return jnp.zeros_like(u)
            return u if mult == 1.0 else u * jnp.asarray(mult, u.dtype)

        return jax.tree_util.tree_map_with_path(one, updates), state

    return optax.GradientTransformation(lambda params: optax.EmptyState(), update)


def _resolve(node: Any, where: str, kind: str, per_name: Mapping[str, Mapping[str, Any]],
             common: Mapping[str, Any]) -> dict[str, Any]:
    """Returns the config's keys over the defaults of its `name`; ConfigError on unknowns."""
    given = _as_dict(node, where)
    name = given.get("name")
    if name not in per_name:
        close = difflib.get_close_matches(str(name), list(per_name), n=2)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        raise ConfigError(f"{where}.name={name!r}: unknown {kind}.{hint} "
                          f"Known {kind}s: {', '.join(sorted(per_name))}.")
    defaults = {**common, **per_name[name]}
    for key in given:
        if key not in defaults:
            close = difflib.get_close_matches(key, list(defaults), n=2)
            hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
            raise ConfigError(f"{where}.{key}: unknown key for {kind} {name!r}.{hint} "
                              f"Accepted: {', '.join(sorted(defaults))}.")
    return {**defaults, **given}


def _as_dict(node: Any, where: str) -> dict[str, Any]:
    if hasattr(node, "to_dict"):
        return node.to_dict()
    if isinstance(node, Mapping):
        return dict(node)
    raise ConfigError(f"{where}: expected a group of keys, got {node!r}.")


def _number(cfg: Mapping[str, Any], key: str, where: str, allow_none: bool = False) -> Any:
    value = cfg[key]
    if value is None and allow_none:
        return None
    if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
        raise ConfigError(f"{where}.{key}={value!r}: must be a number >= 0"
                          f"{' or None' if allow_none else ''}.")
    return value


def _int(cfg: Mapping[str, Any], key: str, where: str) -> int:
    value = cfg[key]
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ConfigError(f"{where}.{key}={value!r}: must be an int >= 0.")
    return value


def _dtype(cfg: Mapping[str, Any], key: str) -> Any:
    value = cfg[key]
    if value is None:
        return None
    try:
        return jnp.dtype(value)
    except TypeError as e:
        raise ConfigError(f"config.optimizer.{key}={value!r}: not a dtype name "
                          "('float32', 'bfloat16', or None for the param's dtype).") from e


def _regex(pattern: Any, key: str) -> re.Pattern:
    if not isinstance(pattern, str):
        raise ConfigError(f"{key}: {pattern!r} is not a regex string.")
    try:
        return re.compile(pattern)
    except re.error as e:
        raise ConfigError(f"{key}: bad regex {pattern!r}: {e}.") from e


def _as_tuple(value: Any) -> tuple:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    return tuple(value)


def _shape(leaf: Any) -> tuple[int, ...]:
    shape = getattr(leaf, "shape", None)
    return tuple(shape) if shape is not None else tuple(jnp.shape(leaf))
