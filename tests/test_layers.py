"""Tests for framework.layers: shapes, param names, logical axes, scan/remat, randomness."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from framework.layers import (
    Encoder,
    EncoderBlock,
    MAPHead,
    MlpBlock,
    MultiHeadDotProductAttention,
    PatchEmbedding,
    StochasticDepth,
    pool_tokens,
    posemb_sincos_2d,
    position_embedding,
    remat_policy,
)

KEY = jax.random.key(0)
ALLOWED_AXES = {"embed", "heads", "kv", "mlp", "classes", "layers", None}


def shapes(variables):
    """Returns {'a/b/c': shape} for every leaf of unboxed `variables`."""
    flat = jax.tree_util.tree_flatten_with_path(nn.unbox(variables))[0]
    return {"/".join(k.key for k in path): leaf.shape for path, leaf in flat}


def specs(variables):
    """Returns {'a/b/c': PartitionSpec} for every param of boxed `variables`."""
    flat = jax.tree_util.tree_flatten_with_path(
        nn.get_partition_spec(variables), is_leaf=lambda x: isinstance(x, jax.sharding.PartitionSpec)
    )[0]
    return {"/".join(k.key for k in path): tuple(leaf) for path, leaf in flat}


def test_attention_shapes_names_and_axes():
    attn = MultiHeadDotProductAttention(num_heads=4, out_features=12)
    q, kv = jnp.ones((2, 5, 16)), jnp.ones((2, 7, 24))
    variables = attn.init(KEY, q, kv, deterministic=True)
    assert attn.apply(variables, q, kv, deterministic=True).shape == (2, 5, 12)
    assert shapes(variables) == {
        "params/query/kernel": (16, 4, 4),
        "params/query/bias": (4, 4),
        "params/key/kernel": (24, 4, 4),
        "params/key/bias": (4, 4),
        "params/value/kernel": (24, 4, 4),
        "params/value/bias": (4, 4),
        "params/out/kernel": (4, 4, 12),
        "params/out/bias": (12,),
    }
    s = specs(variables)
    assert s["params/query/kernel"] == ("embed", "heads", "kv")
    assert s["params/value/bias"] == ("heads", "kv")
    assert s["params/out/kernel"] == ("heads", "kv", "embed")
    assert s["params/out/bias"] == ("embed",)


def test_attention_mask_hides_keys():
    attn = MultiHeadDotProductAttention(num_heads=2)
    x = jax.random.normal(KEY, (2, 6, 8))
    variables = attn.init(KEY, x, deterministic=True)
    mask = jnp.broadcast_to(jnp.arange(6) < 4, (2, 1, 6, 6))
    y = attn.apply(variables, x, x, mask, deterministic=True)
    # Changing masked-out keys leaves the output unchanged.
    x2 = x.at[:, 4:].set(100.0)
    y2 = attn.apply(variables, x2[:, :4], x2, mask[..., :4, :], deterministic=True)
    np.testing.assert_allclose(y[:, :4], y2, atol=1e-5)


def test_attention_explicit_dropout_path_matches_fused_and_is_random():
    x = jax.random.normal(KEY, (2, 6, 8))
    mask = jnp.broadcast_to(jnp.arange(6) < 5, (2, 1, 6, 6))
    fused = MultiHeadDotProductAttention(num_heads=2)
    variables = fused.init(KEY, x, deterministic=True)
    ref = fused.apply(variables, x, x, mask, deterministic=True)
    # A rate this small keeps every weight: the explicit path must equal the fused one.
    tiny = MultiHeadDotProductAttention(num_heads=2, dropout_rate=1e-12)
    y = tiny.apply(variables, x, x, mask, deterministic=False, rngs={"dropout": KEY})
    np.testing.assert_allclose(y, ref, atol=1e-5)
    drop = MultiHeadDotProductAttention(num_heads=2, dropout_rate=0.5)
    np.testing.assert_allclose(
        drop.apply(variables, x, deterministic=True), fused.apply(variables, x, deterministic=True)
    )
    y1 = drop.apply(variables, x, deterministic=False, rngs={"dropout": jax.random.key(1)})
    y2 = drop.apply(variables, x, deterministic=False, rngs={"dropout": jax.random.key(2)})
    assert not np.allclose(y1, y2)


def test_attention_rejects_indivisible_heads():
    with pytest.raises(ValueError, match="divisible"):
        MultiHeadDotProductAttention(num_heads=3).init(KEY, jnp.ones((1, 2, 8)), deterministic=True)


def test_mlp_block_names_and_axes():
    mlp = MlpBlock(mlp_dim=32)
    variables = mlp.init(KEY, jnp.ones((2, 3, 8)), deterministic=True)
    assert shapes(variables) == {
        "params/Dense_0/kernel": (8, 32),
        "params/Dense_0/bias": (32,),
        "params/Dense_1/kernel": (32, 8),
        "params/Dense_1/bias": (8,),
    }
    s = specs(variables)
    assert s["params/Dense_0/kernel"] == ("embed", "mlp")
    assert s["params/Dense_0/bias"] == ("mlp",)
    assert s["params/Dense_1/kernel"] == ("mlp", "embed")
    assert s["params/Dense_1/bias"] == ("embed",)


def test_encoder_block_names():
    block = EncoderBlock(mlp_dim=32, num_heads=2)
    variables = block.init(KEY, jnp.ones((2, 3, 8)), deterministic=True)
    prefixes = {"/".join(k.split("/")[:2]) for k in shapes(variables)}
    assert prefixes == {
        "params/LayerNorm_0",
        "params/MultiHeadDotProductAttention_0",
        "params/LayerNorm_1",
        "params/MlpBlock_0",
    }
    assert specs(variables)["params/LayerNorm_1/scale"] == ("embed",)


def _encoder(**kw):
    return Encoder(depth=3, mlp_dim=32, num_heads=2, **kw)


def _stack(params, depth):
    """Stacks encoderblock_{i} params into one scanned `encoderblock` tree."""
    blocks = [params[f"encoderblock_{i}"] for i in range(depth)]
    return {
        "encoderblock": jax.tree.map(lambda *xs: jnp.stack(xs), *blocks),
        "encoder_norm": params["encoder_norm"],
    }


def test_encoder_scan_matches_unscanned():
    x = jax.random.normal(KEY, (2, 5, 8))
    params = nn.unbox(_encoder().init(KEY, x, deterministic=True))["params"]
    assert set(params) == {"encoderblock_0", "encoderblock_1", "encoderblock_2", "encoder_norm"}
    y = _encoder().apply({"params": params}, x, deterministic=True)
    scanned = _encoder(scan=True)
    scanned_init = nn.unbox(scanned.init(KEY, x, deterministic=True))["params"]
    stacked = _stack(params, 3)
    assert jax.tree.map(jnp.shape, scanned_init) == jax.tree.map(jnp.shape, stacked)
    y_scan = scanned.apply({"params": stacked}, x, deterministic=True)
    np.testing.assert_allclose(y_scan, y, atol=1e-5)


@pytest.mark.parametrize("scan", [False, True])
def test_encoder_remat_same_output_and_grads(scan):
    x = jax.random.normal(KEY, (2, 5, 8))
    params = nn.unbox(_encoder(scan=scan).init(KEY, x, deterministic=True))["params"]

    def loss(p, module):
        return jnp.sum(module.apply({"params": p}, x, deterministic=True) ** 2)

    plain = _encoder(scan=scan)
    rematted = _encoder(scan=scan, remat=True, remat_policy="nothing_saveable")
    l0, g0 = jax.value_and_grad(loss)(params, plain)
    l1, g1 = jax.value_and_grad(loss)(params, rematted)
    np.testing.assert_allclose(l1, l0, rtol=1e-6)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-5), g1, g0)


def test_remat_policy_names():
    assert remat_policy(None) is None
    assert remat_policy("dots_saveable") is jax.checkpoint_policies.dots_saveable
    with pytest.raises(ValueError, match="nothing_saveable"):
        remat_policy("everything")


@pytest.mark.parametrize("scan", [False, True])
def test_encoder_stochastic_depth_and_dropout(scan):
    x = jax.random.normal(KEY, (4, 5, 8))
    enc = _encoder(scan=scan, stochastic_depth=0.5, dropout_rate=0.1)
    variables = enc.init(KEY, x, deterministic=True)
    ref = _encoder(scan=scan).apply(variables, x, deterministic=True)
    np.testing.assert_allclose(enc.apply(variables, x, deterministic=True), ref, atol=1e-6)
    y1 = enc.apply(variables, x, deterministic=False, rngs={"dropout": jax.random.key(1)})
    y2 = enc.apply(variables, x, deterministic=False, rngs={"dropout": jax.random.key(2)})
    assert not np.allclose(y1, y2)


def test_drop_path_rates_schedules():
    assert _encoder(stochastic_depth=0.2).drop_path_rates() == pytest.approx([0.0, 0.1, 0.2])
    constant = _encoder(stochastic_depth=0.2, stochastic_depth_schedule="constant")
    assert constant.drop_path_rates() == [0.2, 0.2, 0.2]
    with pytest.raises(ValueError, match="linear"):
        _encoder(stochastic_depth_schedule="cosine").drop_path_rates()


def test_stochastic_depth_drops_whole_examples():
    x = jnp.ones((64, 3, 2))
    layer = StochasticDepth(rate=0.5)
    assert layer.apply({}, x, deterministic=True) is x
    y = layer.apply({}, x, deterministic=False, rngs={"dropout": KEY})
    per_example = y.reshape(64, -1)
    # Each example is all zeros or all 1 / keep_prob.
    assert np.all((per_example == 0).all(1) | (per_example == 2.0).all(1))
    assert 0 < int((per_example == 0).all(1).sum()) < 64


def test_patch_embedding_2d_and_3d():
    image = jax.random.normal(KEY, (2, 8, 12, 3))
    embed = PatchEmbedding(features=5, patch_size=(4, 4))
    variables = embed.init(KEY, image)
    y = embed.apply(variables, image)
    assert y.shape == (2, 2, 3, 5)
    assert specs(variables)["params/kernel"] == (None, None, None, "embed")
    assert specs(variables)["params/bias"] == ("embed",)
    # Equals an explicit patchify + matmul.
    p = nn.unbox(variables)["params"]
    patches = image.reshape(2, 2, 4, 3, 4, 3).transpose(0, 1, 3, 2, 4, 5).reshape(2, 2, 3, 48)
    ref = patches @ p["kernel"].reshape(48, 5) + p["bias"]
    np.testing.assert_allclose(y, ref, atol=1e-5)

    video = jnp.ones((2, 4, 8, 8, 3))
    tubelet = PatchEmbedding(features=5, patch_size=(2, 4, 4))
    variables = tubelet.init(KEY, video)
    assert tubelet.apply(variables, video).shape == (2, 2, 2, 2, 5)
    assert shapes(variables)["params/kernel"] == (2, 4, 4, 3, 5)
    assert specs(variables)["params/kernel"] == (None, None, None, None, "embed")
    with pytest.raises(ValueError, match="rank"):
        tubelet.init(KEY, image)


def test_patch_embedding_bf16_compute():
    embed = PatchEmbedding(features=4, patch_size=(2, 2), dtype=jnp.bfloat16)
    variables = embed.init(KEY, jnp.ones((1, 4, 4, 3)))
    assert nn.unbox(variables)["params"]["kernel"].dtype == jnp.float32
    assert embed.apply(variables, jnp.ones((1, 4, 4, 3))).dtype == jnp.bfloat16


def test_posemb_sincos_2d_values():
    h, w, width = 3, 4, 16
    pe = posemb_sincos_2d(h, w, width)
    assert pe.shape == (1, 12, 16)
    q = width // 4
    omega = 10_000.0 ** (-np.arange(q) / (q - 1))
    np.testing.assert_allclose(pe[0, 0], np.repeat([0.0, 1.0, 0.0, 1.0], q), atol=1e-6)
    row, col = 2, 1  # token 2 * 4 + 1 = 9
    expected = np.concatenate(
        [np.sin(col * omega), np.cos(col * omega), np.sin(row * omega), np.cos(row * omega)]
    )
    np.testing.assert_allclose(pe[0, row * w + col], expected, atol=1e-6)
    assert pe[0, 9, 0] == pytest.approx(np.sin(1.0), abs=1e-6)
    assert pe[0, 9, 3 * q - 1] == pytest.approx(np.sin(2.0 / 10_000.0), abs=1e-6)
    with pytest.raises(ValueError, match="% 4"):
        posemb_sincos_2d(2, 2, 6)


class _PosembUser(nn.Module):
    kind: str

    @nn.compact
    def __call__(self, x):
        return x + position_embedding(self, self.kind, (2, 3), x.shape[-1])


def test_position_embedding_kinds():
    x = jnp.zeros((1, 6, 8))
    variables = _PosembUser("learn").init(KEY, x)
    assert shapes(variables) == {"params/pos_embedding": (1, 6, 8)}
    assert specs(variables)["params/pos_embedding"] == (None, None, "embed")
    assert _PosembUser("sincos2d").init(KEY, x) == {}
    np.testing.assert_allclose(
        _PosembUser("sincos2d").apply({}, x), posemb_sincos_2d(2, 3, 8), atol=1e-6
    )
    with pytest.raises(ValueError, match="learn"):
        _PosembUser("rope").init(KEY, x)


def test_pool_tokens():
    x = jnp.arange(24.0).reshape(2, 3, 4)
    np.testing.assert_allclose(pool_tokens(x, "token"), x[:, 0])
    np.testing.assert_allclose(pool_tokens(x, "gap"), x.mean(1))
    assert pool_tokens(x, "none") is x
    with pytest.raises(ValueError, match="MAPHead"):
        pool_tokens(x, "map")


def test_map_head():
    head = MAPHead(num_heads=2, mlp_dim=16)
    x = jax.random.normal(KEY, (3, 5, 8))
    variables = head.init(KEY, x)
    assert head.apply(variables, x).shape == (3, 8)
    top = {k.split("/")[1] for k in shapes(variables)}
    assert top == {"probe", "MultiHeadDotProductAttention_0", "LayerNorm_0", "MlpBlock_0"}
    assert specs(variables)["params/probe"] == (None, None, "embed")


def test_encoder_bf16_close_to_f32():
    x = jax.random.normal(KEY, (2, 5, 8))
    variables = _encoder().init(KEY, x, deterministic=True)
    y32 = _encoder().apply(variables, x, deterministic=True)
    y16 = _encoder(dtype=jnp.bfloat16).apply(variables, x, deterministic=True)
    assert y16.dtype == jnp.bfloat16
    np.testing.assert_allclose(y16.astype(jnp.float32), y32, atol=0.1)


def test_every_layer_param_uses_known_axes():
    x = jnp.ones((2, 5, 8))
    variables = _encoder(scan=True).init(KEY, x, deterministic=True)
    flat_specs = specs(variables)
    flat_shapes = shapes(variables)
    assert set(flat_specs) == set(flat_shapes)
    for name, spec in flat_specs.items():
        assert len(spec) == len(flat_shapes[name]), name
        assert set(spec) <= ALLOWED_AXES, (name, spec)
        if "encoderblock" in name:
            assert spec[0] == "layers", (name, spec)
