"""Tests for framework.layers: shapes, param names, logical axes, scan/remat, randomness."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from init_helpers import ALLOWED_AXES, KEY, abstract_init, init, sum_of_squares_and_grads

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

# One input shape throughout; numpy-drawn inputs and params avoid compiling jax.random for
# every new shape (that dominates the run time on CPU).
X = jnp.asarray(np.random.default_rng(0).normal(size=(2, 5, 8)), jnp.float32)


def shapes(variables):
    """Returns {'a/b/c': shape} for every leaf of unboxed `variables`."""
    flat = jax.tree_util.tree_flatten_with_path(nn.unbox(variables))[0]
    return {"/".join(k.key for k in path): leaf.shape for path, leaf in flat}


def specs(variables):
    """Returns {'a/b/c': PartitionSpec} for every param of boxed `variables`."""
    flat = jax.tree_util.tree_flatten_with_path(
        nn.get_partition_spec(variables),
        is_leaf=lambda x: isinstance(x, jax.sharding.PartitionSpec),
    )[0]
    return {"/".join(k.key for k in path): tuple(leaf) for path, leaf in flat}


def test_attention_shapes_names_and_axes():
    attn = MultiHeadDotProductAttention(num_heads=4, out_features=12)
    q, kv = jnp.ones((2, 5, 8)), jnp.ones((2, 7, 16))
    variables = abstract_init(attn, q, kv, deterministic=True)
    assert attn.apply(init(attn, q, kv, deterministic=True), q, kv, deterministic=True).shape == (
        2,
        5,
        12,
    )
    assert shapes(variables) == {
        "params/query/kernel": (8, 4, 2),
        "params/query/bias": (4, 2),
        "params/key/kernel": (16, 4, 2),
        "params/key/bias": (4, 2),
        "params/value/kernel": (16, 4, 2),
        "params/value/bias": (4, 2),
        "params/out/kernel": (4, 2, 12),
        "params/out/bias": (12,),
    }
    s = specs(variables)
    assert s["params/query/kernel"] == ("embed", "heads", "kv")
    assert s["params/value/bias"] == ("heads", "kv")
    assert s["params/out/kernel"] == ("heads", "kv", "embed")
    assert s["params/out/bias"] == ("embed",)


def test_attention_mask_hides_keys():
    attn = MultiHeadDotProductAttention(num_heads=2)
    x = X
    variables = init(attn, x, deterministic=True)
    mask = jnp.broadcast_to(jnp.arange(5) < 3, (2, 1, 5, 5))
    y = attn.apply(variables, x, x, mask, deterministic=True)
    # Changing masked-out keys leaves the output unchanged.
    x2 = x.at[:, 3:].set(100.0)
    y2 = attn.apply(variables, x, x2, mask, deterministic=True)
    np.testing.assert_allclose(y, y2, atol=1e-5)


def test_attention_explicit_dropout_path_matches_fused_and_is_random():
    x = X
    mask = jnp.broadcast_to(jnp.arange(5) < 4, (2, 1, 5, 5))
    fused = MultiHeadDotProductAttention(num_heads=2)
    variables = init(fused, x, deterministic=True)
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


def test_long_attention_recomputes_its_weights_with_the_same_gradients(monkeypatch):
    """Outside blockwise attention, from attention.LONG_ATTENTION_PAIRS query-key pairs on
    the weights are not stored for the backward pass (a checkpoint around the core); values
    and gradients are unchanged."""
    from framework.layers import attention

    attn = MultiHeadDotProductAttention(num_heads=2, attention_implementation="xla")
    x = jax.random.normal(KEY, (1, 6, 4))
    variables = init(attn, x, deterministic=True)

    def grads():
        def loss(params, x):
            return jnp.sum(attn.apply({"params": params}, x, deterministic=True) ** 2)

        grad = jax.grad(loss, argnums=(0, 1))
        jaxpr = str(jax.make_jaxpr(grad)(variables["params"], x))
        return jax.jit(grad)(variables["params"], x), "remat" in jaxpr

    stored, stored_remat = grads()
    monkeypatch.setattr(attention, "LONG_ATTENTION_PAIRS", 36)  # 6 x 6 pairs: recompute.
    recomputed, recomputed_remat = grads()
    assert not stored_remat and recomputed_remat
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7),
                 stored, recomputed)


@pytest.mark.parametrize("lq, lk, block", [(7, 7, 3), (5, 9, 4), (8, 6, 8)])
def test_blockwise_attention_equals_dense_values_and_gradients(lq, lk, block):
    """Query blocks that do and do not divide Lq, cross-attention (Lq != Lk), one block."""
    from framework.layers.blockwise_attention import blockwise_dot_product_attention

    rng = np.random.default_rng(1)
    q = jnp.asarray(rng.normal(size=(2, lq, 3, 4)) * 2, jnp.float32)
    k, v = (jnp.asarray(rng.normal(size=(2, lk, 3, 4)) * 2, jnp.float32) for _ in range(2))
    w = jnp.asarray(rng.normal(size=(2, lq, 3, 4)), jnp.float32)

    def loss(fn):
        return jax.jit(jax.value_and_grad(
            lambda q, k, v: jnp.sum(fn(q, k, v) * w), argnums=(0, 1, 2)))

    blockwise = loss(lambda q, k, v: blockwise_dot_product_attention(q, k, v, block))
    dense = loss(jax.nn.dot_product_attention)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5),
                 blockwise(q, k, v), dense(q, k, v))


def test_blockwise_attention_on_a_data_and_tensor_mesh(monkeypatch):
    """The loop over heads and query blocks with the batch and the heads sharded over a
    4 x 2 CPU mesh: same values and gradients as the dense form."""
    from jax.sharding import AxisType, NamedSharding, PartitionSpec

    from framework.layers import blockwise_attention

    monkeypatch.setattr(blockwise_attention, "WHOLE_BYTES", 0)  # Force the long path.
    mesh = jax.make_mesh((4, 2), ("data", "tensor"), axis_types=(AxisType.Auto,) * 2)
    sharding = NamedSharding(mesh, PartitionSpec("data", None, "tensor", None))
    rng = np.random.default_rng(2)
    q, k, v, w = (jax.device_put(jnp.asarray(rng.normal(size=(8, 7, 4, 8)), jnp.float32),
                                 sharding) for _ in range(4))

    def loss(fn):
        return jax.jit(jax.value_and_grad(
            lambda q, k, v: jnp.sum(fn(q, k, v) * w), argnums=(0, 1, 2)))

    with jax.set_mesh(mesh):
        blockwise = loss(lambda q, k, v: blockwise_attention.blockwise_dot_product_attention(
            q, k, v, 3))(q, k, v)
        dense = loss(jax.nn.dot_product_attention)(q, k, v)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5),
                 blockwise, dense)


def test_attention_runs_blockwise_on_cpu_and_masks_are_refused():
    """On CPU, unmasked attention with implementation None takes the blockwise core (the
    same output as 'xla'); a mask with 'blockwise' is a named error."""
    auto = MultiHeadDotProductAttention(num_heads=2)
    variables = init(auto, X, deterministic=True)
    jaxpr = str(jax.make_jaxpr(lambda x: auto.apply(variables, x, deterministic=True))(X))
    assert "custom_vjp_call" in jaxpr
    xla = MultiHeadDotProductAttention(num_heads=2, attention_implementation="xla")
    np.testing.assert_allclose(auto.apply(variables, X, deterministic=True),
                               xla.apply(variables, X, deterministic=True), atol=1e-6)
    blockwise = MultiHeadDotProductAttention(num_heads=2, attention_implementation="blockwise")
    with pytest.raises(ValueError, match="takes no mask"):
        blockwise.apply(variables, X, mask=jnp.ones((5, 5), bool), deterministic=True)
    with pytest.raises(ValueError, match="use one of"):
        MultiHeadDotProductAttention(num_heads=2, attention_implementation="flash").apply(
            variables, X, deterministic=True)


def test_attention_rejects_indivisible_heads():
    with pytest.raises(ValueError, match="divisible"):
        abstract_init(MultiHeadDotProductAttention(num_heads=3), X, deterministic=True)


def test_mlp_block_names_and_axes():
    mlp = MlpBlock(mlp_dim=16)
    variables = abstract_init(mlp, X, deterministic=True)
    assert shapes(variables) == {
        "params/Dense_0/kernel": (8, 16),
        "params/Dense_0/bias": (16,),
        "params/Dense_1/kernel": (16, 8),
        "params/Dense_1/bias": (8,),
    }
    s = specs(variables)
    assert s["params/Dense_0/kernel"] == ("embed", "mlp")
    assert s["params/Dense_0/bias"] == ("mlp",)
    assert s["params/Dense_1/kernel"] == ("mlp", "embed")
    assert s["params/Dense_1/bias"] == ("embed",)


def test_encoder_block_names():
    block = EncoderBlock(mlp_dim=16, num_heads=2)
    variables = abstract_init(block, X, deterministic=True)
    prefixes = {"/".join(k.split("/")[:2]) for k in shapes(variables)}
    assert prefixes == {
        "params/LayerNorm_0",
        "params/MultiHeadDotProductAttention_0",
        "params/LayerNorm_1",
        "params/MlpBlock_0",
    }
    assert specs(variables)["params/LayerNorm_1/scale"] == ("embed",)


def _encoder(**kw):
    return Encoder(depth=3, mlp_dim=16, num_heads=2, **kw)


def _stack(params, depth):
    """Stacks encoderblock_{i} params into one scanned `encoderblock` tree."""
    blocks = [params[f"encoderblock_{i}"] for i in range(depth)]
    return {
        "encoderblock": jax.tree.map(lambda *xs: jnp.stack(xs), *blocks),
        "encoder_norm": params["encoder_norm"],
    }


@pytest.fixture(scope="module")
def encoder_params():
    """(unscanned params, the same params stacked for scan=True)."""
    params = init(_encoder(), X, deterministic=True)["params"]
    return params, _stack(params, 3)


def test_encoder_scan_matches_unscanned(encoder_params):
    params, stacked = encoder_params
    assert set(params) == {"encoderblock_0", "encoderblock_1", "encoderblock_2", "encoder_norm"}
    scanned = _encoder(scan=True)
    abstract = nn.unbox(abstract_init(scanned, X, deterministic=True))
    assert jax.tree.map(jnp.shape, abstract["params"]) == jax.tree.map(jnp.shape, stacked)
    y = _encoder().apply({"params": params}, X, deterministic=True)
    y_scan = scanned.apply({"params": stacked}, X, deterministic=True)
    np.testing.assert_allclose(y_scan, y, atol=1e-5)


@pytest.mark.parametrize("scan", [False, True])
def test_encoder_remat_same_output_and_grads(encoder_params, scan):
    params = encoder_params[1] if scan else encoder_params[0]

    def loss_and_grad(module):
        return sum_of_squares_and_grads(
            lambda p: module.apply({"params": p}, X, deterministic=True), params)

    l0, g0 = loss_and_grad(_encoder(scan=scan))
    l1, g1 = loss_and_grad(_encoder(scan=scan, remat=True, remat_policy="nothing_saveable"))
    np.testing.assert_allclose(l1, l0, rtol=1e-6)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-5), g1, g0)


def test_remat_policy_names():
    assert remat_policy(None) is None
    assert remat_policy("dots_saveable") is jax.checkpoint_policies.dots_saveable
    with pytest.raises(ValueError, match="nothing_saveable"):
        remat_policy("everything")


@pytest.mark.parametrize("scan", [False, True])
def test_encoder_stochastic_depth_and_dropout(encoder_params, scan):
    variables = {"params": encoder_params[1] if scan else encoder_params[0]}
    enc = _encoder(scan=scan, stochastic_depth=0.5, dropout_rate=0.1)
    ref = _encoder(scan=scan).apply(variables, X, deterministic=True)
    np.testing.assert_allclose(enc.apply(variables, X, deterministic=True), ref, atol=1e-6)
    train = jax.jit(lambda rng: enc.apply(variables, X, deterministic=False, rngs={"dropout": rng}))
    assert not np.allclose(train(jax.random.key(1)), train(jax.random.key(2)))


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
    image = jnp.asarray(np.random.default_rng(1).normal(size=(2, 8, 12, 3)), jnp.float32)
    embed = PatchEmbedding(features=5, patch_size=(4, 4))
    assert specs(abstract_init(embed, image)) == {
        "params/kernel": (None, None, None, "embed"),
        "params/bias": ("embed",),
    }
    variables = init(embed, image)
    y = embed.apply(variables, image)
    assert y.shape == (2, 2, 3, 5)
    # Equals an explicit patchify + matmul.
    p = variables["params"]
    patches = image.reshape(2, 2, 4, 3, 4, 3).transpose(0, 1, 3, 2, 4, 5).reshape(2, 2, 3, 48)
    ref = patches @ p["kernel"].reshape(48, 5) + p["bias"]
    np.testing.assert_allclose(y, ref, atol=1e-5)

    video = jnp.ones((2, 4, 8, 8, 3))
    tubelet = PatchEmbedding(features=5, patch_size=(2, 4, 4))
    variables = abstract_init(tubelet, video)
    assert tubelet.apply(init(tubelet, video), video).shape == (2, 2, 2, 2, 5)
    assert shapes(variables)["params/kernel"] == (2, 4, 4, 3, 5)
    assert specs(variables)["params/kernel"] == (None, None, None, None, "embed")
    with pytest.raises(ValueError, match="rank"):
        abstract_init(tubelet, image)


def test_patch_embedding_bf16_compute():
    embed = PatchEmbedding(features=4, patch_size=(2, 2), dtype=jnp.bfloat16)
    variables = init(embed, jnp.ones((1, 4, 4, 3)))
    assert variables["params"]["kernel"].dtype == jnp.float32
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
    variables = abstract_init(_PosembUser("learn"), x)
    assert shapes(variables) == {"params/pos_embedding": (1, 6, 8)}
    assert specs(variables)["params/pos_embedding"] == (None, None, "embed")
    assert abstract_init(_PosembUser("sincos2d"), x) == {}
    np.testing.assert_allclose(
        _PosembUser("sincos2d").apply({}, x), posemb_sincos_2d(2, 3, 8), atol=1e-6
    )
    with pytest.raises(ValueError, match="learn"):
        abstract_init(_PosembUser("rope"), x)


def test_pool_tokens():
    x = jnp.arange(24.0).reshape(2, 3, 4)
    np.testing.assert_allclose(pool_tokens(x, "token"), x[:, 0])
    np.testing.assert_allclose(pool_tokens(x, "gap"), x.mean(1))
    assert pool_tokens(x, "none") is x
    np.testing.assert_allclose(pool_tokens(x, "first"), x[:, 0])
    np.testing.assert_allclose(pool_tokens(x, "last"), x[:, -1])
    np.testing.assert_allclose(pool_tokens(x, "max"), x.max(1))
    with pytest.raises(ValueError, match="MAPHead"):
        pool_tokens(x, "map")


def test_map_head():
    head = MAPHead(num_heads=2, mlp_dim=16)
    variables = abstract_init(head, X)
    assert head.apply(init(head, X), X).shape == (2, 8)
    top = {k.split("/")[1] for k in shapes(variables)}
    assert top == {"probe", "MultiHeadDotProductAttention_0", "LayerNorm_0", "MlpBlock_0"}
    assert specs(variables)["params/probe"] == (None, None, "embed")


def test_encoder_bf16_close_to_f32(encoder_params):
    variables = {"params": encoder_params[0]}
    y32 = _encoder().apply(variables, X, deterministic=True)
    y16 = _encoder(dtype=jnp.bfloat16).apply(variables, X, deterministic=True)
    assert y16.dtype == jnp.bfloat16
    np.testing.assert_allclose(y16.astype(jnp.float32), y32, atol=0.1)


def test_every_layer_param_uses_known_axes():
    variables = abstract_init(_encoder(scan=True), X, deterministic=True)
    flat_specs = specs(variables)
    flat_shapes = shapes(variables)
    assert set(flat_specs) == set(flat_shapes)
    for name, spec in flat_specs.items():
        assert len(spec) == len(flat_shapes[name]), name
        assert set(spec) <= ALLOWED_AXES, (name, spec)
        if "encoderblock" in name:
            assert spec[0] == "layers", (name, spec)
