"""Optimizers, schedules, weight-decay masks, freezing, lr multipliers and clipping."""

import math

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from framework import optim
from framework.registry import ConfigError


def _cfg(**kw):
    return ml_collections.ConfigDict(kw)


def _params():
    return {
        "Transformer": {
            "encoderblock_0": {
                "LayerNorm_0": {"scale": jnp.ones(8), "bias": jnp.zeros(8)},
                "MlpBlock_0": {"Dense_0": {"kernel": jnp.ones((8, 16)), "bias": jnp.ones(16)}},
            },
        },
        "pos_embedding": jnp.ones((1, 4, 8)),
        "cls": jnp.ones((1, 1, 8)),
        "head": {"kernel": jnp.ones((8, 3)), "bias": jnp.ones(3)},
    }


def _one_update(opt_cfg, grads=None, sched=None, params=None):
    params = _params() if params is None else params
    tx, _ = optim.make_optimizer(_cfg(**opt_cfg), sched or _cfg(name="constant"), 10, params)
    state = tx.init(params)
    grads = jax.tree.map(jnp.zeros_like, params) if grads is None else grads
    updates, state = tx.update(grads, state, params)
    return updates, state


@pytest.mark.parametrize("name,expected", [
    # step: 0, warmup end (10), middle of decay (55), end (100)
    ("cosine", [0.0, 1.0, 0.55, 0.1]),
    ("linear", [0.0, 1.0, 0.55, 0.1]),
    ("constant", [0.0, 1.0, 1.0, 1.0]),
])
def test_schedules(name, expected):
    kw = {"end_lr_ratio": 0.1} if name != "constant" else {}
    _, sched = optim.make_optimizer(_cfg(name="sgd", lr=2.0), _cfg(name=name, warmup_steps=10,
                                                                    **kw), 100)
    got = [float(sched(s)) / 2.0 for s in (0, 10, 55, 100)]
    np.testing.assert_allclose(got, expected, atol=1e-6)
    assert float(sched(5)) == pytest.approx(1.0)  # Half-way through the warmup.
    if name == "cosine":  # A quarter into the decay: end + (1 - end) * (1 + cos(pi/4)) / 2.
        assert float(sched(32.5)) / 2 == pytest.approx(0.1 + 0.9 * (1 + math.cos(math.pi / 4)) / 2)


def test_rsqrt_schedule_with_cooldown():
    _, sched = optim.make_optimizer(
        _cfg(name="adamw", lr=1.0),
        _cfg(name="rsqrt", warmup_steps=100, timescale=100, cooldown_steps=200), 1000)
    assert float(sched(50)) == pytest.approx(0.5)
    assert float(sched(100)) == pytest.approx(1.0)
    assert float(sched(400)) == pytest.approx(0.5)  # sqrt(100 / (400 - 100 + 100)).
    assert float(sched(900)) == pytest.approx(math.sqrt(100 / 900) * 0.5)  # Half cooled down.
    assert float(sched(1000)) == pytest.approx(0.0)
    assert float(jax.jit(sched)(jnp.int32(400))) == pytest.approx(0.5)


@pytest.mark.parametrize("opt", [
    {"name": "sgd", "lr": 0.1, "momentum": 0.9, "nesterov": True},
    {"name": "sgd", "lr": 0.1, "momentum": 0.0},
    {"name": "adamw", "lr": 0.1, "weight_decay": 1e-4},
    {"name": "adafactor", "lr": 0.1, "clipping_threshold": 1.0},
    {"name": "adafactor", "lr": 0.1, "b1": None, "min_dim_size_to_factor": 4},
])
def test_optimizers_reduce_quadratic(opt):
    target = jnp.arange(64.0).reshape(8, 8) / 64
    params = {"w": {"kernel": jnp.zeros((8, 8))}, "b": jnp.zeros(8)}

    def loss(p):
        return jnp.sum((p["w"]["kernel"] - target) ** 2) + jnp.sum((p["b"] - 1.0) ** 2)

    tx, _ = optim.make_optimizer(_cfg(**opt), _cfg(name="cosine", warmup_steps=2), 30, params)
    state = tx.init(params)

    @jax.jit
    def step(p, s):
        updates, s = tx.update(jax.grad(loss)(p), s, p)
        return optax.apply_updates(p, updates), s

    first = loss(params)
    for _ in range(30):
        params, state = step(params, state)
    assert loss(params) < 0.3 * first


def test_adafactor_factors_big_kernels_and_keeps_bf16_momentum():
    params = {"big": {"kernel": jnp.ones((64, 32))}, "small": {"kernel": jnp.ones((16, 8))}}
    tx, _ = optim.make_optimizer(_cfg(name="adafactor", lr=0.1), _cfg(name="constant"), 10, params)
    state = jax.eval_shape(tx.init, params)
    shapes = {"/".join(str(getattr(k, "key", getattr(k, "name", k))) for k in path): leaf
              for path, leaf in jax.tree_util.tree_flatten_with_path(state)[0]}
    factors = sorted(v.shape for k, v in shapes.items()
                     if k.endswith(("v_row/big/kernel", "v_col/big/kernel")))
    full = [v.shape for k, v in shapes.items() if k.endswith("/v/small/kernel")]
    ema = [v.dtype for k, v in shapes.items() if k.endswith("ema/big/kernel")]
    assert factors == [(32,), (64,)] and full == [(16, 8)] and ema == [jnp.bfloat16]


def test_default_weight_decay_mask_on_update_values():
    # Zero gradients and lr 1: the update is exactly -wd * param where decayed, else 0.
    updates, _ = _one_update({"name": "adamw", "lr": 1.0, "weight_decay": 0.5})
    flat = dict(zip(jax.tree.leaves(optim.param_paths(_params())), jax.tree.leaves(updates)))
    decayed = {"Transformer/encoderblock_0/MlpBlock_0/Dense_0/kernel", "head/kernel"}
    for path, u in flat.items():
        expect = -0.5 if path in decayed else 0.0
        np.testing.assert_allclose(u, expect, err_msg=path)


def test_weight_decay_regex_mask_and_lr_scaling():
    updates, _ = _one_update({"name": "sgd", "lr": 0.1, "weight_decay": 0.5,
                              "weight_decay_mask": ("^head/", "pos_embedding")})
    assert float(updates["head"]["bias"][0]) == pytest.approx(-0.05)  # -lr * wd * 1.
    assert float(updates["pos_embedding"][0, 0, 0]) == pytest.approx(-0.05)
    mlp = updates["Transformer"]["encoderblock_0"]["MlpBlock_0"]
    assert float(mlp["Dense_0"]["kernel"][0, 0]) == 0


def test_freeze_gives_zero_updates_and_no_state():
    grads = jax.tree.map(jnp.ones_like, _params())
    updates, state = _one_update({"name": "adamw", "lr": 0.1, "weight_decay": 0.1,
                                  "freeze": ("^head/", "^cls$")}, grads=grads)
    for leaf in jax.tree.leaves([updates["head"], updates["cls"]]):
        assert np.all(np.asarray(leaf) == 0)
    assert np.all(np.asarray(updates["pos_embedding"]) != 0)
    # The frozen params' places in the adam state are empty MaskedNodes.
    adam = state[0].inner_states["train"].inner_state[-1]
    assert isinstance(adam.mu["head"]["kernel"], optax.MaskedNode)
    assert isinstance(adam.nu["cls"], optax.MaskedNode)
    assert adam.mu["pos_embedding"].shape == (1, 4, 8)
    frozen_leaves = jax.tree.leaves(state[0].inner_states["frozen"])
    assert frozen_leaves == []
    n_state = sum(x.size for x in jax.tree.leaves(state) if x.ndim)
    n_params = sum(x.size for x in jax.tree.leaves(_params()))
    assert n_state == 2 * (n_params - 8 * 3 - 3 - 8)  # mu and nu of the trainable params only.


def test_lr_mults_scale_updates_and_zero_freezes():
    grads = jax.tree.map(jnp.ones_like, _params())
    opt = {"name": "sgd", "lr": 0.1, "momentum": 0.0,
           "lr_mults": (("^head/kernel", 10.0), ("^head/", 0.5), ("pos_emb", 0.0))}
    updates, state = _one_update(opt, grads=grads)
    assert float(updates["head"]["kernel"][0, 0]) == pytest.approx(-1.0)  # First match wins.
    assert float(updates["head"]["bias"][0]) == pytest.approx(-0.05)
    assert float(updates["cls"][0, 0, 0]) == pytest.approx(-0.1)
    assert np.all(np.asarray(updates["pos_embedding"]) == 0)
    assert optim.ParamGroups(opt).mult("pos_embedding") == 0.0


def test_grad_clip_caps_global_norm():
    params = {"a": jnp.zeros(4), "frozen": jnp.zeros(4)}
    grads = {"a": jnp.full(4, 3.0), "frozen": jnp.full(4, 100.0)}  # Trainable norm 6.
    opt = {"name": "sgd", "lr": 1.0, "momentum": 0.0, "grad_clip_norm": 1.5,
           "freeze": ("frozen",)}
    updates, _ = _one_update(opt, grads=grads, params=params)
    assert float(optax.tree.norm(updates)) == pytest.approx(1.5)  # Frozen grads not counted.
    updates, _ = _one_update({**opt, "grad_clip_norm": 10.0}, grads=grads, params=params)
    assert float(optax.tree.norm(updates)) == pytest.approx(6.0)  # Below the cap: unchanged.


def test_unknown_keys_and_names_raise_config_error():
    with pytest.raises(ConfigError, match=r"config.optimizer.learning_rate: unknown key for "
                                          r"optimizer 'adamw'.*Accepted: .*lr"):
        optim.make_optimizer(_cfg(name="adamw", lr=1.0, learning_rate=1.0),
                             _cfg(name="cosine"), 10)
    with pytest.raises(ConfigError, match=r"config.optimizer.b2: unknown key for optimizer 'sgd'"):
        optim.make_optimizer(_cfg(name="sgd", lr=1.0, b2=0.9), _cfg(name="cosine"), 10)
    with pytest.raises(ConfigError, match=r"config.schedule.timescale: unknown key for schedule"):
        optim.make_optimizer(_cfg(name="sgd", lr=1.0), _cfg(name="cosine", timescale=3), 10)
    with pytest.raises(ConfigError, match=r"name='adam'.*adafactor, adamw, sgd"):
        optim.make_optimizer(_cfg(name="adam", lr=1.0), _cfg(name="cosine"), 10)
    with pytest.raises(ConfigError, match=r"config.schedule.name='cos'.*constant, cosine"):
        optim.make_optimizer(_cfg(name="sgd", lr=1.0), _cfg(name="cos"), 10)
    with pytest.raises(ConfigError, match=r"config.optimizer.lr: required"):
        optim.make_optimizer(_cfg(name="sgd"), _cfg(name="cosine"), 10)
    with pytest.raises(ConfigError, match=r"config.optimizer.freeze: bad regex"):
        optim.make_optimizer(_cfg(name="sgd", lr=1.0, freeze=("(",)), _cfg(name="cosine"), 10)
    with pytest.raises(ConfigError, match=r"config.optimizer.lr_mults\[0\]"):
        optim.make_optimizer(_cfg(name="sgd", lr=1.0, lr_mults=("head",)),
                             _cfg(name="cosine"), 10)
    with pytest.raises(ConfigError, match=r"warmup_steps=20 is more than"):
        optim.make_optimizer(_cfg(name="sgd", lr=1.0), _cfg(name="cosine", warmup_steps=20), 10)
    # grad_accum_steps belongs to the trainer: accepted and ignored.
    optim.make_optimizer(_cfg(name="sgd", lr=1.0, grad_accum_steps=4), _cfg(name="cosine"), 10)


def test_param_paths_and_describe_on_abstract_boxed_params():
    from flax import linen as nn

    abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), _params())
    abstract["head"]["kernel"] = nn.LogicallyPartitioned(abstract["head"]["kernel"],
                                                         ("embed", "vocab"))
    paths = optim.param_paths(abstract)
    assert paths["head"]["kernel"] == "head/kernel"
    assert paths["Transformer"]["encoderblock_0"]["LayerNorm_0"]["scale"] == (
        "Transformer/encoderblock_0/LayerNorm_0/scale")
    table = optim.describe_param_groups(
        abstract, _cfg(name="adamw", lr=1.0, weight_decay=0.1, freeze=("^head/bias",),
                       lr_mults=(("cls", 0.1),)))
    rows = {line.split()[0]: line.split() for line in table.splitlines()[1:-1]}
    assert rows["head/bias"][-2:] == ["frozen", "no"]
    assert rows["head/kernel"][-2:] == ["1", "yes"]
    assert rows["cls"][-2:] == ["0.1", "no"]
    assert "3 frozen" in table.splitlines()[-1]
    # The optimizer initialises on abstract params (as the trainer does with eval_shape).
    tx, _ = optim.make_optimizer(_cfg(name="adamw", lr=1.0), _cfg(name="cosine"), 10,
                                 abstract)
    jax.eval_shape(tx.init, nn.meta.unbox(abstract))
