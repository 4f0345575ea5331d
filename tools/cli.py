"""Command-line plumbing shared by the tools: loading a config with its project,
`--config.KEY=VALUE` overrides and clean errors."""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any


def split_overrides(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """Splits `argv` into (other arguments, config overrides "KEY=VALUE").

    `--config.optimizer.lr=0.1` becomes the override "optimizer.lr=0.1"; `--config FILE` is
    left with the other arguments.
    """
    rest, overrides = [], []
    for arg in argv:
        if arg.startswith("--config."):
            overrides.append(arg[len("--config."):])
        else:
            rest.append(arg)
    return rest, overrides


def load_config(spec: str, overrides: Sequence[str] = ()) -> Any:
    """Loads the config `spec` ("file.py[:arg]") with `overrides` ("a.b=value") as
    framework.config.load_config does, then fills in `config.project` from the path when the
    file lives in projects/<name>/ and the config names no project, and imports that
    project so that its registry names resolve. Returns the validated ConfigDict."""
    from framework import config as config_lib

    config = config_lib.load_config(spec, overrides)
    if "project" in config and not config.project:
        config.project = project_from_path(config_lib.split_spec(spec)[0])
    import_project(config)
    return config


def project_from_path(path: str) -> str:
    """Returns <name> when `path` is under projects/<name>/, else ""."""
    parts = os.path.normpath(os.path.abspath(path)).split(os.sep)
    if "projects" in parts:
        i = len(parts) - 1 - parts[::-1].index("projects")
        if i + 1 < len(parts) - 1:
            return parts[i + 1]
    return ""


def import_project(config: Any) -> None:
    """Imports framework's built-in pieces and projects.<config.project> (if set) so that
    they register their names; raises ConfigError when there is no such package."""
    import framework.data  # noqa: F401  (the built-in datasets and ops)
    import framework.evaluators  # noqa: F401
    import framework.losses  # noqa: F401
    import framework.models  # noqa: F401
    from framework.registry import ConfigError

    name = config.get("project", "")
    if not name:
        return
    try:
        importlib.import_module(f"projects.{name}")
    except ModuleNotFoundError as e:
        if e.name in (f"projects.{name}", "projects"):
            raise ConfigError(
                f"config.project={name!r}: no package projects/{name}/ "
                f"(is the repository root on PYTHONPATH?).") from e
        raise


def use_cpu_devices(count: int) -> None:
    """Makes JAX start with `count` virtual CPU devices (must run before JAX is imported)."""
    from tools.train import use_cpu_devices as apply

    apply(count)


def exit_on_config_error(main: Callable[[list[str] | None], int]) -> None:
    """Runs `main(sys.argv[1:])`; a ConfigError, a missing input or an existing output prints
    one line and exits 2."""
    from framework.registry import ConfigError

    try:
        code = main(sys.argv[1:])
    except (ConfigError, FileNotFoundError, FileExistsError) as e:
        print(f"Error: {e}", file=sys.stderr)
        sys.exit(2)
    sys.exit(code or 0)
