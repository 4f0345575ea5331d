"""tools.train on the command line: bad input exits with a clear message before compute."""

import os
import subprocess
import sys

from tools import cli

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _train(*args):
    return subprocess.run([sys.executable, "-m", "tools.train", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def test_missing_workdir():
    out = _train("--config", "configs/synthetic_shapes_vit.py:test")
    assert out.returncode == 2
    assert "--workdir: required" in out.stderr


def test_unknown_override(tmp_path):
    out = _train("--config", "configs/synthetic_shapes_vit.py:test", "--workdir",
                 str(tmp_path / "w"), "--config.optimizer.lr_warmup=3")
    assert out.returncode == 2
    assert "config.optimizer.lr_warmup: unknown key" in out.stderr
    assert not (tmp_path / "w").exists()


def test_project_from_path():
    assert cli.project_from_path("projects/vivit/configs/k400.py") == "vivit"
    assert cli.project_from_path("configs/synthetic_shapes_vit.py") == ""
