"""Runs paper configs small, as tools.train runs them; used by tests/test_paper_configs_run.py,
which starts several of these processes on one plan.

Usage: python tests/paper_configs_driver.py PLAN.json RESULTS.json CACHE_DIR

PLAN.json: {"workdir": DIR, "cwd": DIR, "groups": [[{"spec": "projects/...py:ARG",
"overrides": ["key=value", ...]}, ...], ...]}. The processes share the groups: each claims
the next unclaimed one (a file WORKDIR/claims/N created exclusively) and runs all its
configs, so a group (the variants of one config file) stays in one process. Each config is
trained to step 1 (checkpoint, as `--stop_at_step 1`), then run again in its own workdir: it
resumes, trains step 2 and evaluates (total_steps = 2). RESULTS.json: {spec: {"error": str
or None, "train_steps": [...], "evals": {metric: value}, "checkpoints": [...], "seconds":
float, "cpu_seconds": float}} for the configs this process ran (wall and CPU time).

XLA compiles here with the flags in tool_env.FAST_COMPILE: the tiny programs compile about three
times faster (backend optimisation level 0, XLA:CPU's loop emitters instead of its fusion
emitters, no expensive LLVM passes) than they would run slower. Every compiled program goes
to this process's persistent compilation cache CACHE_DIR, so that variants whose shrunk
programs coincide share them; a resumed run reuses the train step its first run compiled
(framework.train_state.reuse_compiled_steps: no trace, no compile).
"""

import os
import sys

from tool_env import FAST_COMPILE  # tests/ is this script's directory, first on sys.path.

_flags = os.environ.get("XLA_FLAGS", "")  # The test passes FAST_COMPILE on already.
os.environ["XLA_FLAGS"] = (_flags + " --xla_force_host_platform_device_count=8" + (
    "" if FAST_COMPILE in _flags else " " + FAST_COMPILE)).strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def run_one(spec: str, overrides: list[str], workdir: str) -> dict:
    """Trains `spec` to step 1, resumes to step 2 with its evaluation; returns the record."""
    import json

    from framework import trainer
    from tools import cli

    for stop_at_step in (1, None):  # As tools.train --stop_at_step 1, then without it.
        config = cli.load_config(os.path.join(ROOT, spec), overrides)
        trainer.train_and_evaluate(config, workdir, stop_at_step)
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        rows = [json.loads(line) for line in f]
    return {"train_steps": [r["step"] for r in rows if "train/loss" in r],
            "evals": {k: v for r in rows for k, v in r.items() if k.startswith("eval/")},
            "evaluators": sorted(config.evaluators.keys()),
            "checkpoints": sorted(os.listdir(os.path.join(workdir, "checkpoints")))}


def claim(directory: str, index: int) -> bool:
    """Returns True when this process is the first to claim group `index`."""
    os.makedirs(directory, exist_ok=True)
    try:
        os.close(os.open(os.path.join(directory, str(index)), os.O_CREAT | os.O_EXCL))
    except FileExistsError:
        return False
    return True


def main(plan_path: str, results_path: str, cache_dir: str) -> None:
    import json
    import time
    import traceback

    import jax

    from framework import train_state

    train_state.reuse_compiled_steps()  # The resumed run takes the step of its first run.
    with open(plan_path) as f:
        plan = json.load(f)
    jax.config.update("jax_compilation_cache_dir", cache_dir)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    os.chdir(plan["cwd"])  # The configs name their SentencePiece model relative to it.
    results = {}
    for group_index, group in enumerate(plan["groups"]):
        if not claim(os.path.join(plan["workdir"], "claims"), group_index):
            continue
        for index, run in enumerate(group):
            start, cpu = time.time(), time.process_time()
            try:
                record = run_one(run["spec"], run["overrides"],
                                 os.path.join(plan["workdir"], f"run{group_index}_{index}"))
                record["error"] = None
            except Exception as e:  # noqa: BLE001 - reported per config by the test.
                record = {"error": f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=-3)}"}
            record["seconds"] = round(time.time() - start, 1)
            record["cpu_seconds"] = round(time.process_time() - cpu, 1)
            results[run["spec"]] = record
            print(f"{run['spec']}: {'ok' if record['error'] is None else 'FAILED'} "
                  f"({record['seconds']} s, {record['cpu_seconds']} s CPU)", flush=True)
            with open(results_path, "w") as f:
                json.dump(results, f, indent=1)


if __name__ == "__main__":
    main(*sys.argv[1:])
