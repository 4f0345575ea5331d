"""One run per workdir, tried with real processes: a second tools.train refuses naming the
holder; a lock left by a killed process is taken over with a warning; a 2-process job holds
one lock (process 0's) and a second job refuses on every process."""

import json
import logging
import os
import signal
import socket
import subprocess
import sys

from framework import workdir_lock

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HOLD = ("import sys, time; from framework.workdir_lock import WorkdirLock; "
        "WorkdirLock(sys.argv[1]).acquire(); print('HELD', flush=True); time.sleep(600)")


def _hold(workdir):
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(workdir)], cwd=ROOT,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "HELD"
    return proc


def test_second_train_refuses_and_a_dead_holder_is_taken_over(tmp_path, caplog):
    workdir = tmp_path / "run"
    holder = _hold(workdir)
    try:
        out = subprocess.run(
            [sys.executable, "-m", "tools.train", "--config",
             "configs/synthetic_shapes_vit.py:test", "--workdir", str(workdir),
             f"--config.data.data_dir={tmp_path / 'data'}"],
            cwd=ROOT, capture_output=True, text=True, timeout=300)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    assert out.returncode == 2, out.stderr[-2000:]
    message = out.stderr.strip().splitlines()[-1]
    assert f"host {socket.gethostname()}, pid {holder.pid}, since 20" in message, message
    assert "is in use by another run" in message and "another --workdir" in message
    assert sorted(os.listdir(workdir)) == ["run.lock"]  # The second run wrote nothing.

    # The killed holder left its file; the next run takes it over, with a warning.
    with caplog.at_level(logging.WARNING, logger="framework.workdir_lock"):
        lock = workdir_lock.WorkdirLock(str(workdir))
        lock.acquire()
    assert f"pid {holder.pid}" in caplog.text and "Taking over the lock" in caplog.text
    with open(workdir / "run.lock") as f:
        assert json.load(f)["pid"] == os.getpid()
    lock.release()
    assert not (workdir / "run.lock").exists()


JOB = ("import os, sys, time, jax; from framework.workdir_lock import WorkdirLock, "
       "WorkdirInUseError; flags = dict(a.lstrip('-').split('=') for a in sys.argv[2:]); "
       "jax.config.update('jax_cpu_collectives_implementation', 'gloo'); "
       "jax.distributed.initialize(flags['coordinator'], int(flags['num_processes']), "
       "int(flags['process_id'])); lock = WorkdirLock(sys.argv[1])\n"
       "try:\n    lock.acquire()\nexcept WorkdirInUseError as e:\n"
       "    print('REFUSED', e, flush=True); sys.exit(5)\n"
       "print('HOLDING', jax.process_index(), flush=True)\n"
       "while not os.path.exists(flags['release']):\n    time.sleep(0.1)\n"
       "lock.release()")


def test_a_two_process_job_holds_one_lock(tmp_path):
    workdir, release = tmp_path / "job", tmp_path / "release"
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env["JAX_PLATFORMS"] = "cpu"
    first = subprocess.Popen(
        [sys.executable, "-m", "tools.launch_local", "--num_processes", "2", "--timeout",
         "200", "--", sys.executable, "-c", JOB, str(workdir), f"--release={release}"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        seen = []
        for line in first.stdout:
            seen.append(line)
            if sum("HOLDING" in s for s in seen) == 2:
                break
        assert sum("HOLDING" in s for s in seen) == 2, "".join(seen)
        with open(workdir / "run.lock") as f:
            held = json.load(f)
        assert held["processes"] == 2
        second = subprocess.run(
            [sys.executable, "-m", "tools.launch_local", "--num_processes", "2", "--timeout",
             "200", "--", sys.executable, "-c", JOB, str(workdir), f"--release={release}"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=250)
    finally:
        release.touch()
        first.wait(timeout=60)
    assert first.returncode == 0 and not (workdir / "run.lock").exists()
    assert second.returncode == 5, second.stdout[-3000:]
    assert f"[0] REFUSED --workdir {workdir} is in use" in second.stdout
    assert f"pid {held['pid']}" in second.stdout
    assert "[1] REFUSED" in second.stdout  # Process 1 learns process 0's answer.
