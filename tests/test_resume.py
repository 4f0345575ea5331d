"""Exact resume across processes: stop-and-continue; SIGKILL right after a save, mid-step and
during an async save; SIGTERM and Ctrl-C (save and exit 0)."""

import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import orbax.checkpoint as ocp
import pytest
from tool_env import tool_env

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DRIVER = os.path.join(ROOT, "tests", "train_driver.py")
ENV = tool_env(keep_xla_flags=True)  # conftest's 8 devices.


def _command(tmp_path, workdir, record, *extra):
    return [sys.executable, DRIVER, "--record", str(record),
            "--config", "configs/synthetic_shapes_vit.py:test", "--workdir", str(workdir),
            f"--config.data.data_dir={tmp_path / 'data'}", "--config.total_steps=10",
            "--config.checkpoint_every=5", "--config.log_every=1", *extra]


def _run(cmd, timeout=300):
    out = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True,
                         timeout=timeout)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return out


def _params(workdir, step):
    path = os.path.join(workdir, "checkpoints", str(step), "state")
    restored = ocp.PyTreeCheckpointer().restore(path)
    return restored["params"], restored["opt_state"]


def _assert_identical(a, b):
    import jax

    leaves_a, leaves_b = jax.tree.leaves(a), jax.tree.leaves(b)
    assert len(leaves_a) == len(leaves_b) > 0
    for x, y in zip(leaves_a, leaves_b):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def _lines(path):
    with open(path) as f:
        return f.read().split()


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("reference")
    workdir, record = tmp_path / "run", tmp_path / "batches.txt"
    out = _run(_command(tmp_path, workdir, record))
    return tmp_path, workdir, _lines(record), out


# What tools.train prints at the default verbosity, line by line (stdout and stderr).
EXPECTED_OUTPUT = [r"Config   configs/synthetic_shapes_vit\.py:test with 4 overrides",
                   r"Model    vit_classification: 21,164 parameters \(table: .*/params\.txt\)",
                   r"Train    10 steps at batch 16",
                   r"Devices  8 x cpu in 1 process; mesh data=1 fsdp=8 tensor=1, rules fsdp",
                   r"Data     synthetic_shapes under .*/data",
                   r"Workdir  .*/run \(fresh start\)", r"Compiling the train step \.\.\.",
                   r"Compiled in [\d.]+ s; training\."]
EXPECTED_OUTPUT += [rf"step {s}/10 \(.*\) \| .* \| loss [\d.]+ \| lr .*" for s in range(1, 6)]
EXPECTED_OUTPUT += [r"Saving checkpoint .*/run/checkpoints/5"]
EXPECTED_OUTPUT += [rf"step {s}/10 \(.*\) \| .* \| loss [\d.]+ \| lr .*" for s in range(6, 11)]
EXPECTED_OUTPUT += [r"step 10: eval/classification/loss=.*", r"Saving checkpoint .*/10",
                    r"Finished 10 steps\. Wall time \d+:\d\d\.",
                    r"Final    train/loss=[\d.]+, eval/classification/loss=.*top1=.*",
                    r"Saved    .*/run/checkpoints/10", r"Curves   .*/run/metrics\.jsonl, .*"
                    r"/run/tensorboard \(plot: python -m tools\.plot .*/run\)"]


def test_default_output_is_a_banner_progress_saves_and_a_summary(reference):
    """No library logs; every line is one a person needs (the demo's 600 steps with a line
    every 50 and 3 evals and saves make 30 such lines)."""
    out = reference[3]
    assert out.stderr == "", out.stderr[-3000:]
    lines = out.stdout.splitlines()
    assert len(lines) == len(EXPECTED_OUTPUT), out.stdout
    for line, pattern in zip(lines, EXPECTED_OUTPUT):
        assert re.fullmatch(pattern, line), (pattern, line)
    assert (reference[1] / "params.txt").read_text().count("Transformer/encoderblock_") == 32


def test_stop_and_resume_is_bit_identical(reference):
    tmp_path, ref_workdir, ref_batches, _ = reference
    workdir, record = tmp_path / "sliced", tmp_path / "sliced.txt"
    out = _run(_command(tmp_path, workdir, record, "--stop_at_step=6"))
    assert "Stopped after step 6 of 10 (--stop_at_step); run the same command again" in out.stdout
    assert _lines(record) == ref_batches[:6]
    out = _run(_command(tmp_path, workdir, record, "--verbosity=0"))  # Library logs are back.
    assert "Workdir  " in out.stdout and "(resumed from step 6)" in out.stdout
    assert "checkpoint_manager.py" in out.stderr and "Parameter groups:" in out.stderr
    assert _lines(record) == ref_batches
    _assert_identical(_params(workdir, 10), _params(ref_workdir, 10))
    # A finished run started again says so and trains nothing.
    out = _run(_command(tmp_path, workdir, record))
    assert f"{workdir} already finished all 10 steps (checkpoint 10); nothing to train" \
        in out.stdout, out.stdout
    assert _lines(record) == ref_batches


def _start(cmd):
    return subprocess.Popen(cmd, cwd=ROOT, env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def _wait_for(proc, marker, timeout=300):
    """Reads `proc`'s output until a line holds `marker`; returns the lines read."""
    deadline = time.time() + timeout
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if marker in line or time.time() > deadline:
            break
    assert any(marker in line for line in seen), "".join(seen[-50:])
    return seen


def _kill_at(cmd, marker):
    proc = _start(cmd)
    try:
        _wait_for(proc, marker)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL


def _committed(workdir):
    return sorted((name for name in os.listdir(workdir / "checkpoints") if name.isdigit()),
                  key=int)


def _signal_in_step(cmd, step, signum, release):
    """Runs `cmd` held in `step`, sends `signum`, releases the hold; returns its output."""
    proc = _start(cmd + ["--hold_in_step", str(step), "--release_file", str(release)])
    try:
        _wait_for(proc, f"HOLDING IN STEP {step}")
        proc.send_signal(signum)
        time.sleep(0.5)
        release.touch()
        output = proc.communicate(timeout=300)[0]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    release.unlink()
    assert proc.returncode == 0, output[-3000:]
    return output


def test_sigkill_at_three_moments_and_sigterm_resume_bit_identical(reference):
    """One workdir goes through every fault in turn; each restart resumes from the last
    committed checkpoint with the batches an uninterrupted run sees, and the run ends with
    params and optimizer state bit-identical to the reference run."""
    tmp_path, ref_workdir, ref_batches, _ = reference
    workdir, record = tmp_path / "faults", tmp_path / "faults.txt"
    release = tmp_path / "release"

    # 1. SIGKILL right after checkpoint 5 is committed.
    _kill_at(_command(tmp_path, workdir, record, "--hold_after_save", "5"),
             "HOLDING AFTER SAVE 5")
    assert _committed(workdir) == ["5"] and _lines(record) == ref_batches[:5]

    # 2. SIGKILL mid-step: step 7's batch is loaded, its update not yet applied.
    _kill_at(_command(tmp_path, workdir, record, "--hold_in_step", "7"), "HOLDING IN STEP 7")
    assert _committed(workdir) == ["5"]
    assert _lines(record) == ref_batches[:5] + ref_batches[5:7]

    # 3. SIGTERM in step 8: the process finishes the step, saves it and exits 0.
    output = _signal_in_step(_command(tmp_path, workdir, record), 8, signal.SIGTERM, release)
    assert "SIGTERM: saving a checkpoint" in output, output[-3000:]
    assert _committed(workdir) == ["5", "8"]

    # 4. Ctrl-C (SIGINT) in step 9: the same clean stop, said so, no traceback.
    output = _signal_in_step(_command(tmp_path, workdir, record), 9, signal.SIGINT, release)
    assert "Ctrl-C: saving a checkpoint after the current step" in output, output[-3000:]
    assert "Stopped after step 9 of 10 (Ctrl-C)" in output, output[-3000:]
    assert "Traceback" not in output and _committed(workdir) == ["5", "8", "9"]

    # 5. SIGKILL during the asynchronous save of step 10, just before its atomic commit.
    _kill_at(_command(tmp_path, workdir, record, "--hold_commit_of", "10"), "HOLDING COMMIT 10")
    checkpoints = os.listdir(workdir / "checkpoints")
    assert _committed(workdir) == ["5", "8", "9"]
    assert any(name.startswith("10.") for name in checkpoints)  # The uncommitted temp dir.

    # 6. The restart warns about the interrupted save and finishes from step 9.
    out = _run(_command(tmp_path, workdir, record))
    assert "the save of step 10 was interrupted before its commit" in out.stderr + out.stdout
    expected = (ref_batches[:5] + ref_batches[5:7] + ref_batches[5:8] + ref_batches[8:9]
                + ref_batches[9:] + ref_batches[9:])
    assert _lines(record) == expected
    assert _committed(workdir) == ["8", "9", "10"]
    _assert_identical(_params(workdir, 10), _params(ref_workdir, 10))
