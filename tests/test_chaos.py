"""A long run under random kills, and a full disk, against uninterrupted reference runs.

The tiny config on one CPU device, 200 steps, a checkpoint every 10 (asynchronous): killed
with SIGKILL or SIGTERM at moments drawn from a seeded schedule and restarted each time
(also with grain worker processes), it ends with params and optimizer state bit-identical to
the reference run of the same worker count, and every step's loss equal. A save that meets
a full filesystem stops the run naming the path and the free space, keeps the earlier
checkpoints, and the workdir resumes once space is freed.
"""

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest
from tool_env import tool_env

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STEPS = 200
ENV = tool_env()  # One device (--cpu_devices), not conftest's 8.


def _command(data_dir, workdir, *extra):
    return [sys.executable, "-m", "tools.train", "--cpu_devices", "1", "--config",
            "configs/synthetic_shapes_vit.py:test", "--workdir", str(workdir),
            f"--config.data.data_dir={data_dir}", f"--config.total_steps={STEPS}",
            "--config.checkpoint_every=10", "--config.log_every=1", *extra]


def _run(cmd, timeout=400):
    return subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True,
                          timeout=timeout)


def _losses(workdir):
    """Returns {step: train loss}, the last row of each step (a replayed step overwrites)."""
    out = {}
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        for line in f:
            row = json.loads(line)
            if "train/loss" in row:
                out[row["step"]] = row["train/loss"]
    return out


def _state(workdir, step):
    restored = ocp.PyTreeCheckpointer().restore(
        os.path.join(workdir, "checkpoints", str(step), "state"))
    return jax.tree.leaves({"params": restored["params"], "opt": restored["opt_state"]})


@pytest.fixture(scope="module")
def references(tmp_path_factory):
    """references(workers): (tmp dir, workdir of the uninterrupted run with that many grain
    worker processes), each run once. The worker count changes the batch order, so a run is
    compared with the reference of its own worker count."""
    tmp = tmp_path_factory.mktemp("chaos")
    done = {}

    def get(workers):
        if workers not in done:
            workdir = tmp / f"reference_{workers}"
            out = _run(_command(tmp / "data", workdir, f"--config.data.worker_count={workers}"))
            assert out.returncode == 0, out.stderr[-3000:]
            done[workers] = workdir
        return tmp, done[workers]

    return get


def _children(pid):
    """Returns the pids of the child processes of `pid` (Linux /proc)."""
    found = []
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/children") as f:
                found += [int(c) for c in f.read().split()]
        except FileNotFoundError:  # The thread ended since the listing.
            pass
    return found


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _kill_at_random(cmd, rng, after_step):
    """Starts `cmd`, waits until it has logged a step past a random one after `after_step`,
    then sends SIGKILL or SIGTERM a random moment later. Returns (signal, output, last
    step logged)."""
    sig = rng.choice([signal.SIGKILL, signal.SIGTERM])
    target = after_step + rng.randint(3, 40)
    proc = subprocess.Popen(cmd, cwd=ROOT, env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    seen, last, children = [], after_step, []
    try:
        for line in proc.stdout:
            seen.append(line)
            if line.startswith("step ") and "/" in line.split()[1]:
                last = int(line.split()[1].split("/")[0])
                if last >= target:
                    time.sleep(rng.uniform(0.0, 0.15))
                    children = _children(proc.pid)
                    proc.send_signal(sig)
                    break
        proc.wait(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
    # No process of the run outlives it (grain workers end with their parent).
    deadline = time.monotonic() + 15
    while [c for c in children if _alive(c)] and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [c for c in children if _alive(c)], children
    output = "".join(seen)
    assert last >= target, output[-3000:]
    expected = 0 if sig == signal.SIGTERM else -signal.SIGKILL
    assert proc.returncode == expected, (sig, output[-3000:])
    return sig, output, last


@pytest.mark.parametrize("workers,kills,seed", [(0, 3, 19), (2, 2, 7)])
def test_random_kills_end_bit_identical(references, workers, kills, seed):
    tmp, ref = references(workers)
    workdir = tmp / f"chaos_{workers}"
    cmd = _command(tmp / "data", workdir, f"--config.data.worker_count={workers}")
    rng = random.Random(seed)
    step, signals, outputs = 0, [], []
    for _ in range(kills):
        sig, output, logged = _kill_at_random(cmd, rng, step)
        signals.append(sig)
        outputs.append(output)
        step = logged
    final = _run(cmd)
    assert final.returncode == 0, final.stderr[-3000:]
    outputs.append(final.stdout + final.stderr)
    if signal.SIGKILL in signals:
        # A SIGKILL leaves the workdir lock behind: the next start takes it over.
        assert any("Taking over the lock" in o for o in outputs[1:]), signals

    ref_losses, losses = _losses(ref), _losses(workdir)
    assert sorted(losses) == list(range(1, STEPS + 1))
    assert losses == ref_losses  # Every step's loss, exactly.
    for a, b in zip(_state(workdir, STEPS), _state(ref, STEPS), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def _small_filesystem(path):
    """Mounts a 16 MiB tmpfs at `path`; returns False where mounting is not permitted."""
    os.makedirs(path, exist_ok=True)
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    return subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(path)],
                          capture_output=True).returncode == 0


INJECT = ("import errno, os, sys\n"
          "os.environ.update(JAX_PLATFORMS='cpu', "
          "XLA_FLAGS='--xla_force_host_platform_device_count=1')\n"
          "from orbax.checkpoint._src.path import async_path\n"
          "original = async_path.rename\n"
          "async def rename(src, dst):\n"
          "    if os.path.basename(str(dst)) == '30':\n"
          "        raise OSError(errno.ENOSPC, 'No space left on device (injected)', str(dst))\n"
          "    return await original(src, dst)\n"
          "async_path.rename = rename\n"
          "from absl import app; from tools import train\n"
          "sys.argv = ['train'] + sys.argv[1:]\n"
          "app.run(train.main, flags_parser=train.parse_flags)\n")


def test_full_disk_stops_named_keeps_checkpoints_and_resumes(references):
    tmp, ref = references(0)
    small = tmp / "small"
    mounted = _small_filesystem(small)
    workdir = small / "run"
    try:
        first = _run(_command(tmp / "data", workdir, "--stop_at_step=20"))
        assert first.returncode == 0, first.stderr[-3000:]
        filler = small / "filler"
        if mounted:  # Leave 64 KiB: the next checkpoint cannot fit.
            with open(filler, "wb") as f:
                f.write(b"\0" * (shutil.disk_usage(small).free - 64 * 1024))
            full = _run(_command(tmp / "data", workdir))
        else:  # Not permitted to mount: fault injection at orbax's commit (ENOSPC).
            full = _run([sys.executable, "-c", INJECT] + _command(tmp / "data", workdir)[5:])
        assert full.returncode == 4, full.stderr[-3000:]
        message = full.stderr.strip().splitlines()[-1]
        assert message.startswith("Stopped: ") and "No space left on device" in message
        assert "MiB free" in message and str(small) in message, message
        assert "Every earlier checkpoint is kept (newest: step 20)" in message, message
        committed = sorted(int(n) for n in os.listdir(workdir / "checkpoints") if n.isdigit())
        assert committed == [10, 20]

        if mounted:
            filler.unlink()
        resumed = _run(_command(tmp / "data", workdir, "--stop_at_step=40"))
        assert resumed.returncode == 0, resumed.stderr[-3000:]
        assert "resumed from step 20" in resumed.stdout, resumed.stdout[-3000:]
        losses, ref_losses = _losses(workdir), _losses(ref)
        assert losses == {s: ref_losses[s] for s in range(1, 41)}
    finally:
        if mounted:
            subprocess.run(["umount", str(small)], check=False)
