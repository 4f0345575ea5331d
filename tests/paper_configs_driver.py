"""Runs paper configs small, as tools.train runs them, all in this one process; used by
tests/test_paper_configs_run.py.

Usage: python tests/paper_configs_driver.py PLAN.json RESULTS.json

PLAN.json: {"workdir": DIR, "cwd": DIR, "runs": [{"spec": "projects/...py:ARG",
"overrides": ["key=value", ...]}, ...]}. Each config is trained to step 1 (checkpoint, as
`--stop_at_step 1`), then run again in the same workdir: it resumes, trains step 2 and
evaluates (total_steps = 2). RESULTS.json: {spec: {"error": str or None, "train_steps":
[...], "evals": {metric: value}, "checkpoints": [...], "seconds": float}}.

XLA compiles here with backend optimisation level 0 (the tiny programs compile faster than
they would run slower). No persistent compilation cache: on the 8 virtual CPU devices a
resumed run whose SPMD step came from the cache deadlocked in an all-gather (XLA's
rendezvous timeout aborted the process), so every run compiles its own programs.
"""

import os
import sys

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_"
                           "device_count=8 --xla_backend_optimization_level=0").strip()
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


def main(plan_path: str, results_path: str) -> None:
    import json
    import time
    import traceback

    with open(plan_path) as f:
        plan = json.load(f)
    os.chdir(plan["cwd"])  # The configs name their SentencePiece model relative to it.
    results = {}
    for index, run in enumerate(plan["runs"]):
        start = time.time()
        try:
            record = run_one(run["spec"], run["overrides"],
                             os.path.join(plan["workdir"], f"run{index}"))
            record["error"] = None
        except Exception as e:  # noqa: BLE001 - reported per config by the test.
            record = {"error": f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=-3)}"}
        record["seconds"] = round(time.time() - start, 1)
        results[run["spec"]] = record
        print(f"{run['spec']}: {'ok' if record['error'] is None else 'FAILED'} "
              f"({record['seconds']} s)", flush=True)
        with open(results_path, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main(*sys.argv[1:])
