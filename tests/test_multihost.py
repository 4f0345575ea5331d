"""Two processes x 4 virtual CPU devices on 127.0.0.1 train exactly like one process x 8."""

import io
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from framework import config as config_lib
from framework import trainer
from tools import launch_local

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO = "configs/synthetic_shapes_vit.py:test"
OVERRIDES = ("total_steps=3", "log_every=1", "checkpoint_every=0")


def _rows(workdir):
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f]


def _series(rows, key):
    return [r[key] for r in rows if key in r]


def test_two_processes_match_one_process(tmp_path):
    data = tmp_path / "data"
    overrides = (f"data.data_dir={data}",) + OVERRIDES
    one = tmp_path / "one"
    trainer.train_and_evaluate(config_lib.load_config(DEMO, list(overrides)), str(one))

    two = tmp_path / "two"
    command = [sys.executable, "-m", "tools.launch_local", "--num_processes", "2",
               "--timeout", "400", "--", sys.executable, "-m", "tools.train",
               "--cpu_devices", "4", "--config", DEMO, "--workdir", str(two)]
    command += [f"--config.{o}" for o in overrides]
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}  # Not conftest's 8.
    out = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=450)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    # Both processes ran (the banner counts them); only process 0 prints.
    assert "in 2 processes" in out.stdout, out.stdout[-2000:]
    assert "[0] step 3/3" in out.stdout and "[1] step 3/3" not in out.stdout

    rows_one, rows_two = _rows(one), _rows(two)
    losses = _series(rows_two, "train/loss")
    assert len(losses) == 3
    np.testing.assert_allclose(losses, _series(rows_one, "train/loss"), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(_series(rows_two, "eval/classification/top1"),
                               _series(rows_one, "eval/classification/top1"), atol=1e-6)
    data_states = sorted(os.listdir(two / "checkpoints" / "3" / "data"))
    assert "process_0-of-2.json" in data_states and "process_1-of-2.json" in data_states


def test_launcher_stops_the_job_when_a_process_fails(tmp_path):
    # Process 1 fails at once; process 0 would wait forever and must be stopped.
    script = ("import sys, time; i = int(sys.argv[-1].split('=')[1]); "
              "sys.exit(3) if i == 1 else time.sleep(600)")
    status = launch_local.launch([sys.executable, "-c", script], 2, timeout=120,
                                 out=open(os.devnull, "w"), grace=5)
    assert status == 3


@pytest.mark.parametrize("flags,message", [
    (["--coordinator=127.0.0.1:1"], "--coordinator, --num_processes and --process_id go"),
    (["--coordinator=127.0.0.1:1", "--num_processes=2", "--process_id=2"],
     r"--process_id=2: must be in \[0, --num_processes=2\)"),
])
def test_train_rejects_incomplete_multiprocess_flags(tmp_path, flags, message):
    out = subprocess.run(
        [sys.executable, "-m", "tools.train", "--config", DEMO, "--workdir",
         str(tmp_path / "w"), *flags], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "Error:" in out.stderr
    assert re.search(message, out.stderr), out.stderr[-2000:]
    assert not (tmp_path / "w").exists()


def test_launcher_drops_gloo_connection_chatter_only():
    lines = ["[Gloo] Rank 0 is connected to 7 peer ranks. Expected number of connected peer "
             "ranks is : 7\n",
             "[Gloo] Rank 1 is connected to 6 peer ranks. Expected number of connected peer "
             "ranks is : 7\n",
             "step 5/10\n"]
    out = io.StringIO()
    launch_local._relay(1, iter(lines), out)
    assert out.getvalue() == "[1] " + lines[1] + "[1] step 5/10\n"
