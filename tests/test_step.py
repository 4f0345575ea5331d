"""The shaped train step: aux outputs and losses, a mutable collection (BatchNorm), EMA, a
project-registered step; sharding equivalence and exact resume with all of them; a
checkpoint written before these existed still restores."""

import json
import shutil

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest
from flax import linen as nn
from jax.sharding import PartitionSpec

from framework import config as config_lib
from framework import losses, profiling, registry, sharding, step, trainer, trees
from framework.train_state import TrainState, abstract_state_and_shardings
from tools import cli

DEMO = "configs/synthetic_shapes_vit.py:test"
OLD_WORKDIR = "tests/data/workdir_e2bc362"  # Written by commit e2bc362 (before this step).


def _dense(features, names):
    return nn.Dense(features, kernel_init=nn.with_logical_partitioning(
        nn.initializers.lecun_normal(), names))


@registry.MODELS.register("tests.batchnorm_classifier")
class BatchNormClassifier(nn.Module):
    """Images (B, 32, 32, 3) -> 4x4 mean pool -> Dense -> BatchNorm -> relu -> Dense; returns
    {"logits": (B, C), "aux_losses": {"logit_l2": aux_weight * mean(logits ** 2)}}."""

    num_classes: int = 12
    width: int = 16
    aux_weight: float = 1e-2

    @nn.compact
    def __call__(self, batch, train=False):
        x = batch["image"]
        x = x.reshape(x.shape[0], 8, 4, 8, 4, x.shape[-1]).mean((2, 4))
        x = _dense(self.width, ("embed", "mlp"))(x.reshape(x.shape[0], -1))
        x = nn.relu(nn.BatchNorm(use_running_average=not train, momentum=0.8)(x))
        logits = _dense(self.num_classes, ("mlp", "classes"))(x)
        return {"logits": logits,
                "aux_losses": {"logit_l2": self.aux_weight * jnp.mean(logits**2)}}


def _batch(seed=0, size=8):
    rng = np.random.default_rng(seed)
    return {"image": jnp.asarray(rng.normal(size=(size, 32, 32, 3)), jnp.float32),
            "label": jnp.asarray(rng.integers(0, 12, size))}


def _parts(decay=0.5, accum=1):
    return step.StepParts(BatchNormClassifier(), losses.softmax_xent(), optax.sgd(0.1),
                          lambda s: jnp.float32(0.1), accum, decay)


def _state(parts):
    variables = trees.unbox(parts.model.init(jax.random.key(0), _batch(), train=False))
    params = variables.pop("params")
    return TrainState(jnp.zeros((), jnp.int32), params, parts.tx.init(params),
                      jax.random.key_data(jax.random.key(1)), variables,
                      jax.tree.map(jnp.copy, params))


def _assert_same(a, b):
    leaves_a, leaves_b = jax.tree.leaves(a), jax.tree.leaves(b)
    assert len(leaves_a) == len(leaves_b) > 0
    for x, y in zip(leaves_a, leaves_b):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_step_pieces_aux_loss_batch_stats_ema_and_guard():
    parts = _parts(decay=0.5)
    state, batch = _state(parts), _batch()
    train_step = jax.jit(step.make_train_step(parts))
    new, metrics = train_step(state, batch)

    assert set(metrics) == set(step.STEP_METRICS) | {"aux_loss/logit_l2"}
    outputs, updated = parts.model.apply({"params": state.params, **state.collections}, batch,
                                         train=True, mutable=["batch_stats"])
    xent = losses.masked_mean(losses.softmax_cross_entropy(
        outputs["logits"], jax.nn.one_hot(batch["label"], 12)), batch)
    np.testing.assert_allclose(metrics["loss"], xent + outputs["aux_losses"]["logit_l2"],
                               rtol=1e-6)
    _assert_same(new.collections["batch_stats"], updated["batch_stats"])
    assert not np.allclose(new.collections["batch_stats"]["BatchNorm_0"]["mean"], 0.0)
    ema = jax.tree.map(lambda e, p: 0.5 * e + 0.5 * p, state.ema_params, new.params)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6), new.ema_params, ema)
    assert new.eval_variables()["params"] is new.ema_params
    assert set(new.eval_variables()) == {"params", "batch_stats"}

    # A NaN batch: params, optimizer state, batch statistics and EMA stay; the step advances.
    bad = {**batch, "image": batch["image"].at[0, 0, 0, 0].set(jnp.nan)}
    after, bad_metrics = train_step(new, bad)
    assert float(bad_metrics["nonfinite"]) == 1.0 and int(after.step) == 2
    _assert_same((after.params, after.opt_state, after.collections, after.ema_params),
                 (new.params, new.opt_state, new.collections, new.ema_params))


def test_accumulation_averages_loss_and_metrics_over_micro_batches():
    parts = _parts(accum=2)
    state, batch = _state(parts), _batch(size=8)
    objective = step.model_objective(parts.model, parts.loss_fn)
    rng = jax.random.key(3)
    loss, metrics, collections, _ = jax.jit(
        lambda s, b: step.value_and_grads(objective, s, b, rng, 2))(state, batch)
    micro = step.split_micro_batches(batch, 2)
    by_hand, stats = [], state.collections
    for i in range(2):
        one = jax.tree.map(lambda x, i=i: x[i], micro)
        value, (m, stats) = objective(state.params, stats, one, jax.random.fold_in(rng, i), state)
        by_hand.append((value, m["aux_loss/logit_l2"]))
    np.testing.assert_allclose(loss, np.mean([v for v, _ in by_hand]), rtol=1e-5)
    np.testing.assert_allclose(metrics["aux_loss/logit_l2"], np.mean([a for _, a in by_hand]),
                               rtol=1e-5)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5), collections, stats)


def _config(data_dir, *overrides):
    """The demo's test run with the BatchNorm model (aux loss), EMA and the TokenLearner
    project's mean-teacher step."""
    config = config_lib.load_config(DEMO, [
        f"data.data_dir={data_dir}", "log_every=1", "checkpoint_every=2", "eval_every=0",
        "checkpoint.async_save=false", "total_steps=4", "data.train.num_train=128",
        *overrides])
    config.model = ml_collections.ConfigDict({"name": "tests.batchnorm_classifier"})
    config.project = "token_learner"
    config.train_step = ml_collections.ConfigDict(
        {"name": "token_learner.mean_teacher", "weight": 0.5, "temperature": 2.0})
    config.ema.decay = 0.5
    config_lib.validate(config)
    cli.import_project(config)
    return config


def _rows(workdir):
    with open(workdir / "metrics.jsonl") as f:
        return [json.loads(line) for line in f]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("shaped")
    meshes = {
        "dp": ["mesh.data=8", "mesh.fsdp=1", "sharding.rules=dp"],
        "fsdp": ["mesh.data=1", "mesh.fsdp=8", "sharding.rules=fsdp"],
        "fsdp_tp": ["mesh.data=1", "mesh.fsdp=4", "mesh.tensor=2", "sharding.rules=fsdp_tp"],
    }
    out = {}
    for name, overrides in meshes.items():
        config = _config(tmp / "data", *overrides)
        if name != "dp":
            config.evaluators = ml_collections.ConfigDict()  # Fewer compiles.
        out[name] = (config, trainer.train_and_evaluate(config, str(tmp / name)), tmp / name)
    return tmp, out


def test_dp_fsdp_fsdp_tp_agree_with_aux_batch_stats_ema_and_project_step(runs):
    _, out = runs
    losses_by_mesh = {}
    for name, (_, result, workdir) in out.items():
        rows = [r for r in _rows(workdir) if "train/loss" in r]
        assert len(rows) == 4
        assert {"train/aux_loss/logit_l2", "train/distill_kl",
                "train/supervised_loss"} <= set(rows[-1])
        losses_by_mesh[name] = [r["train/loss"] for r in rows]
        assert set(result.state.collections) == {"batch_stats"}
        assert result.state.ema_params is not None
    np.testing.assert_allclose(losses_by_mesh["fsdp"], losses_by_mesh["dp"], rtol=1e-5)
    np.testing.assert_allclose(losses_by_mesh["fsdp_tp"], losses_by_mesh["dp"], rtol=1e-5)
    # fsdp_tp splits the hidden (mlp) dim over "tensor" and the largest remaining over "fsdp".
    kernel = out["fsdp_tp"][1].state.params["Dense_0"]["kernel"]
    assert kernel.addressable_shards[0].data.shape == (192 // 4, 16 // 2)
    stats = out["fsdp_tp"][1].state.collections["batch_stats"]["BatchNorm_0"]["mean"]
    # Sharded by the same rules as params: fsdp's "*" splits the largest dim (Flax's
    # BatchNorm names no axes).
    assert stats.sharding.spec == PartitionSpec("fsdp")


def test_collections_with_logical_names_are_sharded_by_the_rules():
    mesh = sharding.make_mesh({"data": 1, "fsdp": 4, "tensor": 2})
    rules = sharding.logical_rules("fsdp_tp")
    boxed = {
        "params": {"kernel": nn.LogicallyPartitioned(
            jax.ShapeDtypeStruct((192, 16), jnp.float32), ("embed", "mlp"))},
        "batch_stats": {"mean": nn.LogicallyPartitioned(
            jax.ShapeDtypeStruct((16,), jnp.float32), ("mlp",))},
    }
    abstract, shardings = abstract_state_and_shardings(boxed, optax.sgd(0.1), mesh, rules,
                                                       ema=True)
    assert shardings.collections["batch_stats"]["mean"].spec == PartitionSpec("tensor")
    assert shardings.ema_params["kernel"].spec == shardings.params["kernel"].spec
    assert abstract.collections["batch_stats"]["mean"].shape == (16,)


def test_evaluators_score_the_ema_params_with_batch_stats(runs):
    _, out = runs
    config, result, workdir = out["dp"]
    logged = [r for r in _rows(workdir) if "eval/classification/loss" in r][-1]
    run = trainer.build(config, str(workdir))
    evaluator = run.evaluators["classification"]
    with jax.set_mesh(run.mesh):
        ema = evaluator.run(result.state.eval_variables())
        live = evaluator.run({"params": result.state.params, **result.state.collections})
    assert logged["eval/classification/loss"] == pytest.approx(ema["loss"], rel=1e-6)
    assert abs(live["loss"] - ema["loss"]) > 1e-6


def test_resume_is_bit_identical_with_batch_stats_ema_and_project_step(runs):
    tmp, out = runs
    config, reference, _ = out["dp"]
    workdir = tmp / "sliced"
    # The sliced run also traces its two steps (tools.train --profile_steps 1:2).
    first = trainer.train_and_evaluate(config, str(workdir), stop_at_step=2,
                                       profile_steps=(1, 2))
    assert int(first.state.step) == 2
    traces = profiling.trace_files(str(workdir / profiling.PROFILE_DIR))
    assert any(t.endswith(".xplane.pb") for t in traces), traces
    assert any(t.endswith("perfetto_trace.json.gz") for t in traces), traces
    resumed = trainer.train_and_evaluate(config, str(workdir))
    _assert_same(resumed.state, reference.state)
    assert [r["train/loss"] for r in _rows(workdir) if "train/loss" in r] == [
        r["train/loss"] for r in _rows(out["dp"][2]) if "train/loss" in r]


def test_project_step_needs_ema(runs):
    tmp, _ = runs
    config = _config(tmp / "data")
    config.ema.decay = 0.0
    with pytest.raises(registry.ConfigError, match="set config.ema.decay"):
        trainer.train_and_evaluate(config, str(tmp / "no_ema"))


def test_checkpoint_written_before_ema_and_collections_restores(tmp_path):
    """e2bc362's run (2 steps, then evaluated) restores and evaluates to what it logged."""
    from tools import eval as eval_tool

    workdir = tmp_path / "old"
    shutil.copytree(OLD_WORKDIR, workdir)
    with open(workdir / "config.json") as f:
        assert not {"ema", "train_step"} & set(json.load(f))
    logged = [r for r in _rows(workdir) if "eval/classification/loss" in r][-1]
    step_, metrics = eval_tool.evaluate(str(workdir), train_overrides=[
        f"data.data_dir={tmp_path / 'data'}"])
    assert step_ == 2
    for key in ("eval/classification/loss", "eval/classification/top1"):
        assert metrics[key] == pytest.approx(logged[key], rel=1e-6)
