"""One process of a 2-process job (2 x 4 CPU devices, 127.0.0.1) killed with SIGKILL mid-step
and mid-save: the survivor stops by itself within a bounded time (no launcher to stop it),
and a restart of the whole job resumes from the last commit with the losses and evaluation
of an uninterrupted 1 x 8 run (so two processes x 4 devices train exactly like one x 8)."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
from tool_env import tool_env

from framework import config as config_lib
from framework import trainer
from tools import launch_local

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DRIVER = os.path.join(ROOT, "tests", "train_driver.py")
DEMO = "configs/synthetic_shapes_vit.py:test"
OVERRIDES = ("total_steps=30", "log_every=1", "checkpoint_every=10")
HEARTBEAT = 5  # Seconds; the survivor must be gone well within STOP_BOUND.
STOP_BOUND = 90
ENV = tool_env()  # --cpu_devices 4, not conftest's 8.


def _train_args(tmp_path, workdir):
    return ["--config", DEMO, "--workdir", str(workdir), "--heartbeat_timeout", str(HEARTBEAT),
            f"--config.data.data_dir={tmp_path / 'data'}"] + [f"--config.{o}" for o in OVERRIDES]


def _start_job(tmp_path, workdir, hold_commit_of=None):
    """Starts the two processes directly (no launcher); returns them."""
    port = launch_local.free_port()
    procs = []
    for index in range(2):
        if index == 0 and hold_commit_of:  # Process 0 commits; hold it before the rename.
            head = [sys.executable, DRIVER, "--hold_commit_of", str(hold_commit_of)]
        else:
            head = [sys.executable, "-m", "tools.train", "--cpu_devices", "4"]
        cmd = head + _train_args(tmp_path, workdir) + [
            f"--coordinator=127.0.0.1:{port}", "--num_processes=2", f"--process_id={index}"]
        env = dict(ENV, XLA_FLAGS="--xla_force_host_platform_device_count=4") \
            if head[1] == DRIVER else ENV
        procs.append(subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True))
    return procs


def _kill_one_and_time_the_other(procs, marker):
    """Waits for `marker` in process 0's output, SIGKILLs process 1; returns (seconds until
    process 0 exited, its exit status, its output)."""
    seen = []
    try:
        for line in procs[0].stdout:
            seen.append(line)
            if marker in line:
                break
        assert any(marker in line for line in seen), "".join(seen[-40:])
        procs[1].send_signal(signal.SIGKILL)
        start = time.monotonic()
        seen += procs[0].stdout.readlines()
        procs[0].wait(timeout=STOP_BOUND + 60)
        return time.monotonic() - start, procs[0].returncode, "".join(seen)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def _committed(workdir):
    return sorted(int(n) for n in os.listdir(workdir / "checkpoints") if n.isdigit())


def _series(workdir, key):
    """Returns {step: value of `key`}, the last row of each step (a replayed step overwrites)."""
    out = {}
    with open(workdir / "metrics.jsonl") as f:
        for line in f:
            row = json.loads(line)
            if key in row:
                out[row["step"]] = row[key]
    return out


def test_a_killed_process_stops_the_job_and_the_restart_resumes(tmp_path):
    workdir = tmp_path / "job"
    # 1. Mid-step: process 1 dies while the job trains step 13 or so.
    took, status, output = _kill_one_and_time_the_other(_start_job(tmp_path, workdir),
                                                         "step 13/30")
    assert status != 0 and took < STOP_BOUND, (took, status, output[-3000:])
    assert _committed(workdir) == [10]

    # 2. Mid-save: process 0 is about to commit checkpoint 20 when process 1 dies.
    took, status, output = _kill_one_and_time_the_other(
        _start_job(tmp_path, workdir, hold_commit_of=20), "HOLDING COMMIT 20")
    assert status != 0 and took < STOP_BOUND, (took, status, output[-3000:])
    assert _committed(workdir) == [10]  # Step 20 was never committed.

    # 3. The whole job again: it resumes from step 10 and finishes.
    command = [sys.executable, "-m", "tools.launch_local", "--num_processes", "2",
               "--timeout", "400", "--", sys.executable, "-m", "tools.train",
               "--cpu_devices", "4"] + _train_args(tmp_path, workdir)
    out = subprocess.run(command, cwd=ROOT, env=ENV, capture_output=True, text=True,
                         timeout=450)
    assert out.returncode == 0, out.stdout[-4000:]
    assert "resumed from step 10" in out.stdout
    assert _committed(workdir)[-1] == 30
    # Both processes ran (the banner counts them); only process 0 prints.
    assert "in 2 processes" in out.stdout, out.stdout[-2000:]
    assert "[0] step 30/30" in out.stdout and "[1] step 30/30" not in out.stdout
    data_states = sorted(os.listdir(workdir / "checkpoints" / "30" / "data"))
    assert "process_0-of-2.json" in data_states and "process_1-of-2.json" in data_states

    # An uninterrupted 1 x 8 run: every loss within 1e-6, the final evaluation the same.
    one = tmp_path / "one"
    overrides = [f"data.data_dir={tmp_path / 'data'}", *OVERRIDES]
    trainer.train_and_evaluate(config_lib.load_config(DEMO, overrides), str(one))
    resumed, reference = _series(workdir, "train/loss"), _series(one, "train/loss")
    assert sorted(resumed) == list(range(1, 31))
    np.testing.assert_allclose([resumed[s] for s in range(1, 31)],
                               [reference[s] for s in range(1, 31)], rtol=0, atol=1e-6)
    top1 = "eval/classification/top1"
    assert list(_series(workdir, top1)) == [30]
    np.testing.assert_allclose(_series(workdir, top1)[30], _series(one, top1)[30], atol=1e-6)
