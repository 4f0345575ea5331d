"""Command-line plumbing shared by the tools: loading a config with its project,
`--config.KEY=VALUE` overrides and clean errors."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

# Harmless library warnings a person cannot act on: orbax opening a run's checkpoints
# read-only (tools.eval), and orbax noting that a checkpoint written by an older path has no
# per-item metadata file (conversions).
_NOISE = ("CheckpointManagerOptions.read_only=True", "Given directory is read only",
          "Metadata file does not exist")


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

    def prepare(config: Any, path: str) -> None:
        if "project" in config and not config.project:
            config.project = project_from_path(path)
        import_project(config)

    return config_lib.load_config(spec, overrides, prepare)


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


class _PlainFormatter(logging.Formatter):
    """Formats a log record as 'Warning: message' (no timestamp, thread or file)."""

    def format(self, record: logging.LogRecord) -> str:
        return f"{record.levelname.capitalize()}: {record.getMessage()}"


def _not_noise(record: logging.LogRecord) -> bool:
    return not any(text in str(record.msg) for text in _NOISE)


def quiet_logs(verbose: bool = False) -> None:
    """Hides the libraries' INFO logs (absl, orbax, jax) and their known harmless warnings,
    and prints the warnings that remain as one plain 'Warning: ...' line; with `verbose`
    (absl's --verbosity given), logs are left as absl's flag sets them."""
    from absl import logging as absl_logging

    logging.getLogger("absl").addFilter(_not_noise)
    if verbose:
        return
    absl_logging.set_verbosity(absl_logging.WARNING)
    # asyncio reports orbax's failed background writes again at exit ("Task exception was
    # never retrieved"), after the run has already stopped naming the error.
    logging.getLogger("asyncio").setLevel(logging.CRITICAL)
    root = logging.getLogger()
    root.setLevel(logging.WARNING)
    if not root.handlers:
        root.addHandler(logging.StreamHandler(sys.stderr))
    for handler in root.handlers:
        handler.setFormatter(_PlainFormatter())


def use_cpu_devices(count: int) -> None:
    """Makes JAX start with `count` virtual CPU devices (must run before JAX is imported)."""
    from tools.train import use_cpu_devices as apply

    apply(count)


class ArgumentParser(argparse.ArgumentParser):
    """argparse with the tools' one-line usage errors: 'Error: ... (--help lists the
    options)' and exit status 2."""

    def error(self, message: str):
        """Prints `message` as one 'Error:' line and exits 2."""
        print(f"Error: {message} ({self.prog} --help lists the options).", file=sys.stderr)
        sys.exit(2)


def exit_on_config_error(main: Callable[[list[str] | None], int],
                         argv: Sequence[str] | None = None) -> None:
    """Runs `main(argv)` (default: sys.argv[1:]) and exits with its status; a ConfigError, a
    missing input or an existing output prints one 'Error:' line and exits 2."""
    from framework.registry import ConfigError

    try:
        code = main(list(sys.argv[1:] if argv is None else argv))
    except (ConfigError, FileNotFoundError, FileExistsError) as e:
        print(f"Error: {e}", file=sys.stderr)
        sys.exit(2)
    sys.exit(code or 0)
