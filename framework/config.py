"""Configs: load a file (`path.py[:arg]`), apply command-line overrides, validate once, and
ConfigError, the error every bad config raises."""

from __future__ import annotations

import ast
import hashlib
import importlib
import importlib.util
import os
from collections.abc import Iterable, Sequence
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


def load_config(spec: str, overrides: Sequence[str] = ()) -> ml_collections.ConfigDict:
    """Loads `spec` ("file.py[:arg]"), applies `overrides` ("a.b=value") and validates.

    Returns the validated ConfigDict. `config.project` is filled in from the path when the
    file lives in projects/<name>/ and the config does not name a project itself.
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
    if "project" in config and not config.project:
        config.project = project_from_path(path)
    for override in overrides:
        key, sep, value = override.partition("=")
        if not sep:
            raise ConfigError(f"override {override!r}: expected --config.KEY=VALUE.")
        set_by_path(config, key.removeprefix("--").removeprefix("config."), value)
    validate(config)
    return config


def project_from_path(path: str) -> str:
    """Returns <name> when `path` is under projects/<name>/, else ""."""
    parts = os.path.normpath(os.path.abspath(path)).split(os.sep)
    if "projects" in parts:
        i = len(parts) - 1 - parts[::-1].index("projects")
        if i + 1 < len(parts) - 1:
            return parts[i + 1]
    return ""


def import_project(config: ml_collections.ConfigDict) -> None:
    """Imports projects.<config.project> (if set) so that it registers its pieces."""
    name = config.get("project", "")
    if not name:
        return
    try:
        importlib.import_module(f"projects.{name}")
    except ModuleNotFoundError as e:
        if e.name in (f"projects.{name}", "projects"):
            raise ConfigError(
                f"config.project={name!r}: no package projects/{name}/ "
                f"(is the repository root on PYTHONPATH?)."
            ) from e
        raise


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
    if not isinstance(node, ml_collections.ConfigDict) or leaf not in node:
        _unknown_key(node, dotted)
    current = node[leaf]
    if isinstance(current, ml_collections.ConfigDict):
        raise ConfigError(f"config.{dotted} is a group of keys; override one of its keys: "
                          f"{', '.join(sorted(current.keys()))}.")
    try:
        node[leaf] = parse_value(text, current)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"config.{dotted}={text!r}: {e} (the field holds "
                          f"{type(current).__name__} {current!r}).") from e


def _unknown_key(node: Any, dotted: str) -> None:
    known = sorted(node.keys()) if isinstance(node, ml_collections.ConfigDict) else []
    close = [k for k in known if k.lower() == dotted.split(".")[-1].lower()]
    raise ConfigError(f"config.{dotted}: unknown key." + (
        f" Known keys here: {', '.join(known)}." if known else "") + (
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

