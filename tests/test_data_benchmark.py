"""The input-pipeline benchmark: the measuring function and tools/benchmark_data's CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import ml_collections
import pytest

import framework.data  # noqa: F401  (registers datasets and ops)
from framework.data.benchmark import measure_input_pipeline

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_measure_input_pipeline_reports_throughput_and_shapes(tmp_path):
    c = ml_collections.ConfigDict({"data_dir": str(tmp_path), "worker_count": 0})
    c.train = dict(name="synthetic_shapes", split="train", num_train=64, num_eval=8,
                   preprocess="random_crop(24)|flip_lr")
    result = measure_input_pipeline(c, 8, num_batches=3, warmup_batches=1)
    assert result["examples_per_sec"] > 0 and result["batch_size"] == 8
    assert result["examples_per_sec"] == pytest.approx(24 / result["seconds"])
    assert result["shapes"] == {"image": [8, 24, 24, 3], "label": [8]}
    assert result["main_process_cpu_seconds_per_example"] > 0
    assert c.worker_count == 0  # The caller's config is not changed.
    with pytest.raises(ValueError, match="num_batches"):
        measure_input_pipeline(c, 8, num_batches=0)


def test_benchmark_data_cli_prints_json(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "tools.benchmark_data", "--config",
         "configs/synthetic_shapes_vit.py:test", "--json", "--worker_count", "0",
         "--num_batches", "2", "--warmup_batches", "1",
         f"--config.data.data_dir={tmp_path}"],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout)
    assert result["worker_count"] == 0 and result["examples_per_sec"] > 0
    assert result["shapes"]["image"] == [16, 32, 32, 3]
