"""Train a config: `python -m tools.train --config FILE.py[:ARG] --workdir DIR [--config.KEY=V]`.

Starting again with the same --workdir resumes from the latest checkpoint there.
"""

from __future__ import annotations

import logging
import os
import sys

from absl import app, flags

flags.DEFINE_string("config", None, "Config file and variant: path/to/config.py[:arg].")
flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics and config.json.")
flags.DEFINE_integer("cpu_devices", 0, "If > 0, run on this many virtual CPU devices "
                     "(sets XLA_FLAGS before JAX starts), e.g. to try a sharded mesh on a laptop.")
flags.DEFINE_integer("stop_at_step", 0, "If > 0, checkpoint and exit after this step (the "
                     "schedule still spans config.total_steps); run again to continue.")
FLAGS = flags.FLAGS


def parse_flags(argv: list[str]) -> list[str]:
    """Parses absl flags from `argv`, setting aside `--config.KEY=VALUE` overrides.

    Returns the remaining positional arguments; the overrides are kept in OVERRIDES.
    """
    rest = []
    for arg in argv[1:]:
        if arg.startswith("--config."):
            OVERRIDES.append(arg[len("--config."):])
        else:
            rest.append(arg)
    return FLAGS([argv[0]] + rest)


OVERRIDES: list[str] = []


def use_cpu_devices(count: int) -> None:
    """Makes JAX (not yet imported) start with `count` virtual CPU devices."""
    if "jax" in sys.modules:
        raise RuntimeError("--cpu_devices must be applied before JAX is imported.")
    os.environ["JAX_PLATFORMS"] = "cpu"
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                               + f" --xla_force_host_platform_device_count={count}").strip()


def main(argv: list[str]) -> None:
    """Loads the config, then trains and evaluates it in --workdir."""
    del argv
    if FLAGS.cpu_devices:
        use_cpu_devices(FLAGS.cpu_devices)
    from framework import config as config_lib
    from framework import trainer
    from framework.registry import ConfigError

    logging.getLogger().setLevel(logging.INFO)
    try:
        if not FLAGS.config:
            raise ConfigError("--config: required, e.g. --config configs/synthetic_shapes_vit.py")
        if not FLAGS.workdir:
            raise ConfigError("--workdir: required (the directory for checkpoints and metrics).")
        config = config_lib.load_config(FLAGS.config, OVERRIDES)
        trainer.train_and_evaluate(config, FLAGS.workdir, FLAGS.stop_at_step or None)
    except ConfigError as e:
        print(f"Config error: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    app.run(main, flags_parser=parse_flags)
