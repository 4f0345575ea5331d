"""Metric writers, the progress line, parameter counts and FLOPs."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen as nn

from framework import flops, metrics, trees


def test_metric_writer_jsonl_and_tensorboard(tmp_path):
    writer = metrics.MetricWriter(str(tmp_path), enabled=True)
    writer.write(1, {"train/loss": jnp.float32(2.5), "train/lr": np.float64(0.1), "params": 7})
    writer.write(2, {"train/loss": float("nan"), "eval/classification/top1": jnp.array([0.5])})
    writer.write_text(0, "config", "a: 1\nb: 2")
    writer.close()
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == [
        {"step": 1, "train/loss": 2.5, "train/lr": 0.1, "params": 7},
        {"step": 2, "train/loss": None, "eval/classification/top1": 0.5},
    ]
    events = os.listdir(tmp_path / "tensorboard")
    assert any(name.startswith("events.out.tfevents") for name in events)
    # A second writer (resume) appends.
    with metrics.MetricWriter(str(tmp_path)) as again:
        again.write(3, {"train/loss": 1})
    assert len((tmp_path / "metrics.jsonl").read_text().splitlines()) == 3


def test_metric_writer_rejects_non_scalars(tmp_path):
    with metrics.MetricWriter(str(tmp_path)) as writer:
        with pytest.raises(TypeError, match="train/loss"):
            writer.write(1, {"train/loss": "high"})
        with pytest.raises(TypeError, match="shape"):
            writer.write(1, {"x": np.zeros(3)})


def test_metric_writer_disabled_writes_nothing(tmp_path):
    workdir = tmp_path / "run"
    writer = metrics.MetricWriter(str(workdir), enabled=False)
    writer.write(1, {"train/loss": 1.0})
    writer.write_text(1, "config", "x")
    writer.close()
    assert not workdir.exists()


class _Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_progress_line_and_rates():
    clock = _Clock()
    progress = metrics.Progress(total_steps=1000, start_step=0, global_batch_size=32, clock=clock)
    clock.now += 30.0  # Slow first window (warm-up): 100 steps in 30 s.
    line = progress.update(100, {"train/loss": 1.23456, "train/lr": 1e-3})
    assert progress.steps_per_sec == pytest.approx(100 / 30)
    assert line.startswith("step 100/1000 (10.0%)")
    assert "loss 1.2346" in line and "lr 1.000e-03" in line
    clock.now += 10.0  # Then 100 steps in 10 s.
    line = progress.update(200, {"train/loss": 1.0})
    assert progress.steps_per_sec == pytest.approx(10.0)
    assert progress.examples_per_sec == pytest.approx(320.0)
    assert "10.00 steps/s" in line and "320.0 examples/s" in line
    assert "ETA 0:01:20" in line  # 800 steps at 10 steps/s, the warm-up window excluded.
    assert "lr" not in line


def test_progress_restart_and_resume():
    clock = _Clock()
    progress = metrics.Progress(total_steps=100_000, start_step=50_000, global_batch_size=1,
                                clock=clock)
    clock.now += 1000.0
    progress.restart(50_000)
    clock.now += 1.0
    line = progress.update(50_001)
    assert progress.steps_per_sec == pytest.approx(1.0)
    assert "(50.0%)" in line and "ETA 13:53:19" in line


def test_count_params_arrays_abstract_and_boxed():
    tree = {"a": jnp.zeros((3, 4)), "b": {"c": jax.ShapeDtypeStruct((5,), jnp.float32)},
            "d": nn.LogicallyPartitioned(jax.ShapeDtypeStruct((2, 3), jnp.bfloat16),
                                         ("embed", "mlp"))}
    assert flops.count_params(tree) == 12 + 5 + 6
    # Inside mesh and logical-rules contexts (as in the trainer), unboxing abstract params
    # must not try to apply a sharding constraint.
    mesh = jax.make_mesh((8,), ("fsdp",))
    with jax.set_mesh(mesh), nn.logical_axis_rules((("embed", "fsdp"), ("mlp", None))):
        assert flops.count_params(tree) == 23
        assert trees.unbox(tree)["d"].shape == (2, 3)


def test_matmul_flops():
    m, k, n = 64, 128, 32
    args = (jax.ShapeDtypeStruct((m, k), jnp.float32), jax.ShapeDtypeStruct((k, n), jnp.float32))
    compiled = jax.jit(jnp.matmul).lower(*args).compile()
    assert flops.compiled_flops(compiled) == pytest.approx(2 * m * k * n)
    assert flops.forward_gflops(jnp.matmul, *args) == pytest.approx(m * k * n / 1e9)
    assert flops.forward_gflops(jnp.matmul, *args, use_compiled=True) == pytest.approx(
        m * k * n / 1e9)


def test_compiled_flops_variants():
    class Fake:
        def __init__(self, result):
            self.result = result

        def cost_analysis(self):
            if isinstance(self.result, Exception):
                raise self.result
            return self.result

    assert flops.compiled_flops(Fake([{"flops": 10.0}])) == 10.0
    assert flops.compiled_flops(Fake({"flops": 4})) == 4.0
    assert flops.compiled_flops(Fake(None)) is None
    assert flops.compiled_flops(Fake([])) is None
    assert flops.compiled_flops(Fake({"bytes accessed": 1.0})) is None
    assert flops.compiled_flops(Fake(NotImplementedError())) is None


def test_mfu():
    assert flops.mfu(1e12, 0.5, 4e12) == pytest.approx(0.5)
    assert flops.mfu(1e12, 0.0, 4e12) == 0.0


def test_model_cost_counts_every_layer_of_a_scanned_encoder():
    import framework.models  # noqa: F401  (registers vit_classification)
    from framework import registry

    kwargs = dict(num_classes=10, patch_size=(8, 8), hidden_size=32, depth=3, mlp_dim=64,
                  num_heads=2)
    spec = {"image": "float32[32,32,3]"}
    plain = flops.model_cost(registry.MODELS.build("vit_classification", kwargs, "m"), spec)
    scanned = flops.model_cost(
        registry.MODELS.build("vit_classification", kwargs | {"scan": True}, "m"), spec)
    assert scanned[0] == plain[0]
    assert abs(scanned[1] - plain[1]) < 1e-9 * max(plain[1], 1)
    with pytest.raises(ValueError, match="config.model_input.image="):
        flops.model_cost(registry.MODELS.build("vit_classification", kwargs, "m"),
                         {"image": "float32(32, 32, 3)"})
