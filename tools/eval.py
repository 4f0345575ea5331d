"""Evaluate a workdir's checkpoint with a config's evaluators, without training.

    python -m tools.eval --workdir DIR [--config FILE.py[:ARG]] [--step N]
        [--config.KEY=V ...] [--json] [--write_metrics] [--cpu_devices N]

The run's own config (WORKDIR/config.json) gives the model and optimizer, so the checkpoint
restores exactly; `--config` (default: the same run config) gives the evaluators and their
data, e.g. a multi-view eval config for a model trained single-view. The model built from
the eval config must have the same parameters as the trained one. `--step` picks a
checkpoint (default: the latest). Results are printed (one JSON object with --json) and,
with --write_metrics, appended to WORKDIR/metrics.jsonl as eval/<evaluator>/<metric>.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from typing import Any

from tools import cli


def _tuples(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _tuples(v) for k, v in value.items()}
    if isinstance(value, list):
        return tuple(_tuples(v) for v in value)
    return value


def run_config(workdir: str, overrides: list[str] = ()) -> Any:
    """Returns the validated ConfigDict saved by the run in WORKDIR/config.json, with
    `overrides` ("KEY=VALUE") applied. Lists in the JSON become tuples, as in config files.

    Raises ConfigError when the file is missing.
    """
    import ml_collections

    from framework import config as config_lib
    from framework.registry import ConfigError

    path = os.path.join(workdir, "config.json")
    if not os.path.isfile(path):
        raise ConfigError(f"--workdir {workdir}: holds no config.json, so it is not the "
                          "workdir of a Tessera training run (tools.train writes one there).")
    with open(path) as f:
        config = ml_collections.ConfigDict(_tuples(json.load(f)))
    added = config_lib.fill_new_defaults(config)
    if added:
        logging.info("%s predates config keys %s; using their defaults.", path,
                     ", ".join(added))
    cli.import_project(config)
    config_lib.upgrade_names(config, path)
    config_lib.apply_overrides(config, overrides)
    config_lib.validate(config)
    return config


def pick_step(checkpointer: Any, step: int | None) -> int:
    """Returns `step` (or the latest step) after checking the checkpoint exists; raises
    ConfigError listing the steps there are otherwise."""
    from framework.registry import ConfigError

    steps = checkpointer.all_steps()
    if not steps:
        raise ConfigError(f"no checkpoint in {checkpointer.directory}; train first "
                          "(python -m tools.train --config ... --workdir ...).")
    if step is None:
        return steps[-1]
    if step not in steps:
        raise ConfigError(f"--step={step}: no such checkpoint in {checkpointer.directory}; "
                          f"there are steps {', '.join(map(str, steps))}.")
    return step


def evaluate(workdir: str, eval_config: Any | None = None, step: int | None = None,
             train_overrides: list[str] = ()) -> tuple[int, dict[str, float]]:
    """Restores WORKDIR's checkpoint at `step` (None = latest) and runs the evaluators of
    `eval_config` (None = the run's own config) on its params.

    Returns (step, {"eval/<evaluator>/<metric>": value}).
    """
    from framework import checkpoint as checkpoint_lib
    from framework import train_state as state_lib
    from framework import trainer
    from framework.registry import ConfigError

    train_config = run_config(workdir, train_overrides)
    config = eval_config if eval_config is not None else train_config
    if not os.path.isdir(os.path.join(workdir, "checkpoints")):
        raise ConfigError(f"no checkpoint in {workdir}/checkpoints; train first "
                          "(python -m tools.train --config ... --workdir ...).")
    # Read-only: a run still training in `workdir` keeps its in-flight saves.
    checkpointer = checkpoint_lib.Checkpointer(workdir, max_to_keep=None, async_save=False,
                                               read_only=True)
    try:
        step = pick_step(checkpointer, step)
        run = trainer.build(config, workdir)
        with state_lib.mesh_context(run):
            spec = state_lib.state_spec(run, train_config)
            state, _ = checkpointer.restore(step, spec.abstract_state, None)
            metrics = {}
            for name, evaluator in run.evaluators.items():
                for metric, value in evaluator.run(state.eval_variables()).items():
                    metrics[f"eval/{name}/{metric}"] = float(value)
    finally:
        checkpointer.close()
    return step, metrics


def main(argv: list[str] | None = None) -> int:
    """Evaluates from the command line; returns the exit status."""
    rest, overrides = cli.split_overrides(sys.argv[1:] if argv is None else argv)
    parser = cli.ArgumentParser(prog="python -m tools.eval", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", required=True, help="the trained run's directory")
    parser.add_argument("--config", default="",
                        help="eval config FILE.py[:ARG] (default: WORKDIR/config.json)")
    parser.add_argument("--step", type=int, default=None, help="checkpoint step (latest)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--write_metrics", action="store_true",
                        help="append the results to WORKDIR/metrics.jsonl")
    parser.add_argument("--cpu_devices", type=int, default=0,
                        help="if > 0, run on this many virtual CPU devices")
    args = parser.parse_args(rest)
    if not os.path.isdir(args.workdir):
        raise FileNotFoundError(f"--workdir {args.workdir}: no such folder (a run's workdir, "
                                "as given to tools.train --workdir).")
    cli.quiet_logs()
    if args.cpu_devices:
        cli.use_cpu_devices(args.cpu_devices)
    from framework import metrics as metrics_lib

    eval_config = None
    if args.config:
        eval_config = cli.load_config(args.config, overrides)
    elif overrides:
        eval_config = run_config(args.workdir, overrides)
    step, metrics = evaluate(args.workdir, eval_config, args.step)
    if args.write_metrics:
        with metrics_lib.MetricWriter(args.workdir) as writer:
            writer.write(step, metrics)
    if args.json:
        print(json.dumps({"step": step, **metrics}))
    else:
        print(f"step {step}: " + ", ".join(f"{k}={v:.4g}" for k, v in metrics.items()))
    return 0


if __name__ == "__main__":
    cli.exit_on_config_error(main)
