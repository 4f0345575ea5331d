"""The optional Weights & Biases writer: off by default and not imported; offline runs work."""

import json
import os
import subprocess
import sys

import pytest

from framework import config as config_lib
from framework import metrics
from framework.registry import ConfigError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_off_by_default_and_never_imported(tmp_path):
    config = config_lib.load_config("configs/synthetic_shapes_vit.py:test")
    assert config.wandb.enabled is False
    script = (
        "import sys\n"
        "from configs import synthetic_shapes_vit\n"
        "from framework import metrics\n"
        "options = synthetic_shapes_vit.get_config('test').wandb\n"
        f"with metrics.MetricWriter({str(tmp_path)!r}, wandb=options) as writer:\n"
        "    writer.write(1, {'train/loss': 1.5})\n"
        "assert 'wandb' not in sys.modules, 'wandb was imported'\n")
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "metrics.jsonl").exists() and not (tmp_path / "wandb").exists()


def test_bad_options_are_named(tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match="config.wandb.projekt: unknown key"):
        config_lib.load_config("configs/synthetic_shapes_vit.py:test", ["wandb.projekt=x"])
    with pytest.raises(ValueError, match="config.wandb.mode='cloud'"):
        metrics.MetricWriter(str(tmp_path), wandb={"enabled": True, "mode": "cloud"})
    monkeypatch.setitem(sys.modules, "wandb", None)  # As if the extra were not installed.
    with pytest.raises(ConfigError, match=r"pip install -e '.\[wandb\]'"):
        metrics.MetricWriter(str(tmp_path), wandb={"enabled": True, "mode": "offline"})


def test_offline_run_logs_and_resumes(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_SILENT", "true")
    (tmp_path / "config.json").write_text(json.dumps({"seed": 3}))
    options = {"enabled": True, "mode": "offline", "project": "tessera-test", "entity": "",
               "name": "", "tags": ("test",)}
    with metrics.MetricWriter(str(tmp_path), wandb=options) as writer:
        writer.write(1, {"train/loss": 2.0})
        writer.write(2, {"train/loss": 1.0})
    run_id = (tmp_path / "wandb_id.txt").read_text().strip()
    runs = list((tmp_path / "wandb").glob(f"offline-run-*-{run_id}"))
    assert len(runs) == 1
    assert list(runs[0].glob("*.wandb")) and (runs[0].stat().st_size > 0)
    with metrics.MetricWriter(str(tmp_path), wandb=options) as writer:  # A resumed run.
        writer.write(3, {"train/loss": 0.5})
    assert (tmp_path / "wandb_id.txt").read_text().strip() == run_id
    assert len(list((tmp_path / "wandb").glob(f"offline-run-*-{run_id}"))) == 2
