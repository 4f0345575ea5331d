"""Command-line plumbing shared by the tools: `--config.KEY=VALUE` overrides and clean errors."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence


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
