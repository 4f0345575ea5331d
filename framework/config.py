"""Configs: load a file (`path.py[:arg]`), apply command-line overrides, validate once, and
ConfigError, the error every bad config raises.

Overrides set existing keys, keeping their types. The groups `data.train`, `data.eval` and
`evaluators.<name>` also take any argument their registered dataset / evaluator accepts
(typed by its default), so `--config.data.train.name=array_record
--config.data.train.path=DIR` points a config at a prepared dataset; switching a dataset's
`name` drops the keys only the previous dataset took, and `--config.evaluators.<name>=none`
removes an evaluator. `name` overrides are applied before the others.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import logging
import os
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import ml_collections


class ConfigError(ValueError):
    """A config names something that does not exist or has the wrong shape or type."""


# Keys (and the type each must have) of the sub-configs whose shape the trainer fixes.
# Model, loss, optimizer, schedule, data and evaluator keys are checked by their factories.
_INT_KEYS = ("seed", "total_steps", "batch_size", "log_every", "eval_every", "checkpoint_every")
_MESH_AXES = ("data", "fsdp", "tensor")
# Groups whose keys configs/trainer_defaults.py fixes: `validate` rejects any other key in
# them, and `fill_new_defaults` adds the ones a recorded config predates.
_KEYED_GROUPS = ("checkpoint", "wandb", "init_from", "ema")
ON_NONFINITE = ("stop", "skip")


def split_spec(spec: str) -> tuple[str, str | None]:
    """Splits "path/to/config.py:arg" into ("path/to/config.py", "arg"); arg None if absent."""
    path, sep, arg = spec.partition(".py:")
    if sep:
        return path + ".py", arg
    return spec, None


def load_module(path: str):
    """Imports the config file at `path` and returns the module (not added to sys.modules)."""
    if not os.path.isfile(path):
        raise ConfigError(f"--config: no config file at {path!r} (expected path/to/file.py[:arg]).")
    name = "tessera_config_" + hashlib.sha1(os.path.abspath(path).encode()).hexdigest()[:12]
    module_spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    if not hasattr(module, "get_config"):
        raise ConfigError(f"--config: {path} defines no get_config(arg) function.")
    return module


def load_config(spec: str, overrides: Sequence[str] = (),
                prepare: Callable[[ml_collections.ConfigDict, str], None] | None = None,
                ) -> ml_collections.ConfigDict:
    """Loads `spec` ("file.py[:arg]"), applies `overrides` ("a.b=value") and validates.

    Returns the validated ConfigDict. Registry names are not resolved here: the entry
    point imports the package that registers them (tools.cli.load_config), through
    `prepare(config, path)`, called before the overrides so that they may name the keys of
    that package's datasets and evaluators.
    """
    path, arg = split_spec(spec)
    module = load_module(path)
    variants = getattr(module, "VARIANTS", None)
    if variants and arg is not None and arg not in variants:
        raise ConfigError(
            f"--config {spec}: unknown variant {arg!r}; {path} has {', '.join(variants)}."
        )
    config = module.get_config(arg)
    if not isinstance(config, ml_collections.ConfigDict):
        raise ConfigError(f"--config: {path}:get_config returned {type(config).__name__}, "
                          "expected an ml_collections.ConfigDict.")
    if prepare is not None:
        prepare(config, path)
    apply_overrides(config, overrides)
    validate(config)
    return config


def apply_overrides(config: ml_collections.ConfigDict, overrides: Sequence[str]) -> None:
    """Applies `overrides` ("a.b=value") to `config` in place, `*.name` ones first (so that
    the keys of a newly named dataset are known)."""
    def key_of(override: str) -> str:
        return override.partition("=")[0].removeprefix("--").removeprefix("config.")

    for override in sorted(overrides, key=lambda o: not key_of(o).endswith(".name")):
        _, sep, value = override.partition("=")
        if not sep:
            raise ConfigError(f"override {override!r}: expected --config.KEY=VALUE.")
        set_by_path(config, key_of(override), value)


def parse_value(text: str, current: Any) -> Any:
    """Parses the command-line `text` into the type of the `current` value of the field."""
    if isinstance(current, bool):
        lowered = text.lower()
        if lowered in ("true", "1", "yes"):
            return True
        if lowered in ("false", "0", "no"):
            return False
        raise ValueError(f"expected a bool, got {text!r}")
    if isinstance(current, str):
        return text
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        if current is None:
            return text
        raise ValueError(f"cannot parse {text!r} as {type(current).__name__}") from None
    if isinstance(current, float) and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if isinstance(current, tuple) and isinstance(value, list):
        value = tuple(value)
    return value


def set_by_path(config: ml_collections.ConfigDict, dotted: str, text: str) -> None:
    """Sets `config.<dotted>` from the string `text`, keeping the field's type."""
    *parents, leaf = dotted.split(".")
    node = config
    for depth, part in enumerate(parents):
        if not isinstance(node, ml_collections.ConfigDict) or part not in node:
            _unknown_key(node, ".".join(parents[: depth + 1]))
        node = node[part]
    if not isinstance(node, ml_collections.ConfigDict):
        _unknown_key(node, dotted)
    if leaf not in node:
        accepted, any_key = _registered_keys(config, parents, node)
        if leaf not in accepted and not any_key:
            _unknown_key(node, dotted, parents, accepted)
        node[leaf] = accepted.get(leaf)  # The argument's default types the parse below.
    current = node[leaf]
    if isinstance(current, ml_collections.ConfigDict):
        if parents == ["evaluators"] and text.lower() == "none":
            del node[leaf]
            return
        raise ConfigError(f"config.{dotted} is a group of keys; override one of its keys: "
                          f"{', '.join(sorted(current.keys()))}" + (
                              f" (or remove the evaluator: --config.{dotted}=none)."
                              if parents == ["evaluators"] else "."))
    try:
        node[leaf] = parse_value(text, current)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"config.{dotted}={text!r}: {e} (the field holds "
                          f"{type(current).__name__} {current!r}).") from e
    if leaf == "name" and _is_data_group(parents):
        accepted, any_key = _registered_keys(config, parents, node)
        for key in [k for k in node.keys() if accepted and not any_key and k not in accepted]:
            del node[key]  # An argument of the dataset named before.


def _is_data_group(parents: Sequence[str]) -> bool:
    return len(parents) == 2 and parents[0] == "data" and parents[1] in ("train", "eval")


def _registered_keys(config: ml_collections.ConfigDict, parents: Sequence[str],
                     node: ml_collections.ConfigDict) -> tuple[dict[str, Any], bool]:
    """Returns ({argument: default (None if it has none)}, whether any key is accepted) for
    the group at `parents`: for data.train / data.eval the arguments of the dataset
    `node.name` plus name, split and the preprocess keys; for evaluators.<name> those of that
    evaluator (a factory with **kwargs accepts any key). ({}, False) for other groups or an
    unknown name."""
    from framework import registry
    from framework.data.spec import PREPROCESS_KEYS

    if _is_data_group(parents):
        import framework.data  # noqa: F401  (registers the built-in datasets)

        reg, name, fixed = registry.DATASETS, node.get("name", ""), ("name", "split")
        extra = {key: "" for key in (*fixed, *PREPROCESS_KEYS)}
        skip = ("data_dir",)
    elif len(parents) == 2 and parents[0] == "evaluators":
        import framework.evaluators  # noqa: F401  (registers the built-in evaluators)

        reg, name, extra, skip = registry.EVALUATORS, parents[1], {}, ("model", "config", "mesh")
    else:
        return {}, False
    if name not in reg:
        return {}, False
    factory = reg.get(name)
    names, any_key = registry.accepted_kwargs(factory)
    defaults = {n: _default_of(factory, n) for n in sorted(names) if n not in skip}
    return {**defaults, **extra}, any_key


def _default_of(factory: Any, name: str) -> Any:
    """Returns the default of `factory`'s argument `name` (None when it has none)."""
    import dataclasses
    import inspect

    fields = getattr(factory, "__dataclass_fields__", None)
    if fields is not None:
        field = fields[name]
        if field.default is not dataclasses.MISSING:
            return field.default
        return None
    default = inspect.signature(factory).parameters[name].default
    return None if default is inspect.Parameter.empty else default


def _unknown_key(node: Any, dotted: str, parents: Sequence[str] = (),
                 accepted: dict | None = None) -> None:
    known = sorted(accepted or ()) or (
        sorted(node.keys()) if isinstance(node, ml_collections.ConfigDict) else [])
    close = [k for k in known if k.lower() == dotted.split(".")[-1].lower()]
    hint = ""
    if _is_data_group(parents):
        hint = (f" (the keys of dataset {node.get('name')!r}; to train on a folder written "
                "by tools.prepare_dataset, first set --config." + ".".join(parents)
                + ".name=array_record, which takes path).")
    raise ConfigError(f"config.{dotted}: unknown key." + (
        f" Known keys here: {', '.join(known)}{hint or '.'}" if known else "") + (
        f" Did you mean {close[0]}?" if close else ""))


def validate(config: ml_collections.ConfigDict) -> None:
    """Checks the trainer-level shape of `config`; raises ConfigError naming the key at fault.

    Checks: no unknown top-level keys (the known ones are those of
    configs/trainer_defaults.py), required keys present, integer fields are positive ints,
    mesh axes, on_nonfinite, the EMA decay, and that model / loss / train step / data pieces
    are named. `load_config` calls it; the trainer takes the config as validated.
    """
    from configs import trainer_defaults

    known = trainer_defaults.get_config()
    unknown = sorted(set(config.keys()) - set(known.keys()))
    if unknown:
        raise ConfigError(f"config.{unknown[0]}: unknown top-level key. "
                          f"Known keys: {', '.join(sorted(known.keys()))}.")
    missing = sorted(set(known.keys()) - set(config.keys()))
    if missing:
        raise ConfigError(f"config.{missing[0]}: required key is missing (start the config "
                          "from configs/trainer_defaults.get_config()).")
    for key in _INT_KEYS:
        value = config[key]
        if not isinstance(value, int) or isinstance(value, bool):
            raise ConfigError(f"config.{key}={value!r}: must be an int.")
        if value < 0 or (value == 0 and key in ("total_steps", "batch_size", "log_every")):
            raise ConfigError(f"config.{key}={value!r}: must be positive.")
    _check_keys(config.mesh, _MESH_AXES, "config.mesh")
    for axis in _MESH_AXES:
        size = config.mesh[axis]
        if not isinstance(size, int) or (size < 1 and size != -1):
            raise ConfigError(f"config.mesh.{axis}={size!r}: must be a positive int or -1 "
                              "(the rest of the devices).")
    for group in _KEYED_GROUPS:
        _check_keys(config[group], known[group].keys(), f"config.{group}")
    if config.on_nonfinite not in ON_NONFINITE:
        raise ConfigError(f"config.on_nonfinite={config.on_nonfinite!r}: must be one of "
                          f"{', '.join(ON_NONFINITE)}.")
    decay = config.ema.decay
    if isinstance(decay, bool) or not isinstance(decay, int | float) or not 0 <= decay < 1:
        raise ConfigError(f"config.ema.decay={decay!r}: must be a number in [0, 1) "
                          "(0 = no EMA; e.g. 0.999).")
    for key in ("model", "loss", "train_step", "optimizer", "schedule"):
        _require_name(config[key], f"config.{key}")
    _require_name(config.data.train, "config.data.train")
    for name, evaluator in config.evaluators.items():
        if not isinstance(evaluator, ml_collections.ConfigDict):
            raise ConfigError(f"config.evaluators.{name}: must be a group of keys "
                              "(the evaluator's arguments), got {evaluator!r}.")


def fill_new_defaults(config: ml_collections.ConfigDict) -> list[str]:
    """Adds to a recorded run config, in place, the keys that configs/trainer_defaults.py
    gained after the run was recorded (top-level keys, and keys of `mesh` and the groups
    `validate` checks key by key), with their default values. Returns the dotted names added
    (so a workdir from an older Tessera still evaluates)."""
    from configs import trainer_defaults

    defaults, added = trainer_defaults.get_config(), []
    for key, value in defaults.items():
        if key not in config:
            config[key] = value
            added.append(key)
        elif key in ("mesh", *_KEYED_GROUPS):
            for sub, sub_value in value.items():
                if sub not in config[key]:
                    config[key][sub] = sub_value
                    added.append(f"{key}.{sub}")
    return added


def upgrade_names(config: ml_collections.ConfigDict, source: str = "") -> list[str]:
    """Renames in place the registry names of a recorded run config that have been renamed
    since (a project registered them with `formerly=`): model, loss, dataset, preprocess op,
    evaluator and init adapter names. An evaluator keeps its key (the metric prefix) and gets
    a `name`. Returns the renames done, as "old -> new" (empty when none), and logs them in
    one warning line naming `source` (the file the config was read from). The packages that
    register the names must be imported first."""
    from framework import registry
    from framework.data.pipeline import PREPROCESS_KEYS

    done: list[str] = []

    def rename(node: Any, key: str, reg: registry.Registry, default: str = "") -> None:
        old = node.get(key) or default
        new = reg.renamed(old) if isinstance(old, str) else None
        if new:
            node[key] = new
            done.append(f"{old} -> {new}")

    rename(config.model, "name", registry.MODELS)
    rename(config.loss, "name", registry.LOSSES)
    rename(config.init_from, "adapter", registry.INIT_ADAPTERS)
    for key, evaluator in config.evaluators.items():
        rename(evaluator, "name", registry.EVALUATORS, default=key)
    for split in config.data.values():
        if not isinstance(split, ml_collections.ConfigDict):
            continue
        rename(split, "name", registry.DATASETS)
        for key in PREPROCESS_KEYS:
            text = split.get(key)
            for op in {name for name, _, _ in _ops(text, key)}:
                new = registry.PREPROCESS_OPS.renamed(op)
                if new:
                    text = re.sub(rf"(?<![\w.]){re.escape(op)}(?![\w.])", new, text)
                    done.append(f"{op} -> {new}")
            if text:
                split[key] = text
    if done:
        logging.getLogger(__name__).warning(
            "%s names registry names that have since been renamed; reading %s.",
            source or "the config", ", ".join(done))
    return done


def _ops(text: Any, key: str) -> list[tuple[str, tuple, dict]]:
    """Returns the parsed ops of a preprocess string (none for an empty or non-string
    value)."""
    from framework.data import preprocess

    return preprocess.parse(text, key) if isinstance(text, str) and text else []


def _check_keys(node: ml_collections.ConfigDict, allowed: Iterable[str], where: str) -> None:
    extra = sorted(set(node.keys()) - set(allowed))
    if extra:
        raise ConfigError(f"{where}.{extra[0]}: unknown key. Known keys: "
                          f"{', '.join(sorted(allowed))}.")


def _require_name(node: Any, where: str) -> None:
    if not isinstance(node, ml_collections.ConfigDict) or not node.get("name"):
        raise ConfigError(f"{where}.name: required (the registry name of the {where[7:]}).")


def kwargs_of(node: ml_collections.ConfigDict, drop: Sequence[str] = ("name",)) -> dict:
    """Returns the ConfigDict `node` as plain keyword arguments, without the `drop` keys."""
    return {k: _plain(v) for k, v in node.items() if k not in drop}


def _plain(value: Any) -> Any:
    if isinstance(value, ml_collections.ConfigDict):
        return value.to_dict()
    return value

