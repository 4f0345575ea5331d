"""Exact resume across processes: stop-and-continue, and SIGKILL during an async save."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import orbax.checkpoint as ocp
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DRIVER = os.path.join(ROOT, "tests", "train_driver.py")


def _command(tmp_path, workdir, record, *extra):
    return [sys.executable, DRIVER, "--record", str(record),
            "--config", "configs/synthetic_shapes_vit.py:test", "--workdir", str(workdir),
            f"--config.data.data_dir={tmp_path / 'data'}", "--config.total_steps=10",
            "--config.checkpoint_every=5", "--config.log_every=1", *extra]


def _run(cmd, timeout=300):
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
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
    _run(_command(tmp_path, workdir, record))
    return tmp_path, workdir, _lines(record)


def test_stop_and_resume_is_bit_identical(reference):
    tmp_path, ref_workdir, ref_batches = reference
    workdir, record = tmp_path / "sliced", tmp_path / "sliced.txt"
    _run(_command(tmp_path, workdir, record, "--stop_at_step=6"))
    assert _lines(record) == ref_batches[:6]
    _run(_command(tmp_path, workdir, record))
    assert _lines(record) == ref_batches
    _assert_identical(_params(workdir, 10), _params(ref_workdir, 10))


def test_sigkill_during_async_save_resumes_from_last_commit(reference):
    tmp_path, ref_workdir, ref_batches = reference
    workdir, record = tmp_path / "killed", tmp_path / "killed.txt"
    cmd = _command(tmp_path, workdir, record, "--hold_commit_of", "10")
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    deadline = time.time() + 300
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if "HOLDING COMMIT 10" in line or time.time() > deadline:
            break
    assert any("HOLDING COMMIT 10" in line for line in seen), "".join(seen[-50:])
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    checkpoints = os.listdir(workdir / "checkpoints")
    assert "10" not in checkpoints and "5" in checkpoints
    assert any(name.startswith("10") for name in checkpoints)  # The uncommitted temp dir.

    _run(_command(tmp_path, workdir, record))
    # Steps 6..10 were replayed after the restart from step 5, with the same batches.
    assert _lines(record) == ref_batches + ref_batches[5:]
    assert sorted(os.listdir(workdir / "checkpoints")) == ["10", "5"]
    _assert_identical(_params(workdir, 10), _params(ref_workdir, 10))
