"""Tests for framework.models.vit and configs.model_sizes."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from init_helpers import ALLOWED_AXES, KEY, abstract_init, init

from configs.model_sizes import VIT_SIZES, vit_config
from framework import registry
from framework.models import vit as vit_module
from framework.models.vit import ViT, ViTClassifier

IMAGE = jnp.asarray(np.random.default_rng(0).normal(size=(2, 8, 8, 3)), jnp.float32)
TINY = dict(patch_size=(4, 4), hidden_size=8, depth=2, mlp_dim=16, num_heads=2)


def tiny(**kw):
    """A ViT on 8x8 images: 2x2 patches of width 8, 2 blocks."""
    return ViT(**{**TINY, "num_classes": 3, **kw})


def flat(tree, is_leaf=None):
    """Returns {'a/b/c': leaf}."""
    leaves = jax.tree_util.tree_flatten_with_path(tree, is_leaf=is_leaf)[0]
    return {"/".join(k.key for k in path): leaf for path, leaf in leaves}


def shapes(variables):
    return {k: v.shape for k, v in flat(nn.unbox(variables)).items()}


def specs(variables):
    is_spec = lambda x: isinstance(x, jax.sharding.PartitionSpec)  # noqa: E731
    return {k: tuple(v) for k, v in flat(nn.get_partition_spec(variables), is_spec).items()}


BLOCK_PARAMS = {
    "LayerNorm_0/scale": (8,),
    "LayerNorm_0/bias": (8,),
    "MultiHeadDotProductAttention_0/query/kernel": (8, 2, 4),
    "MultiHeadDotProductAttention_0/query/bias": (2, 4),
    "MultiHeadDotProductAttention_0/key/kernel": (8, 2, 4),
    "MultiHeadDotProductAttention_0/key/bias": (2, 4),
    "MultiHeadDotProductAttention_0/value/kernel": (8, 2, 4),
    "MultiHeadDotProductAttention_0/value/bias": (2, 4),
    "MultiHeadDotProductAttention_0/out/kernel": (2, 4, 8),
    "MultiHeadDotProductAttention_0/out/bias": (8,),
    "LayerNorm_1/scale": (8,),
    "LayerNorm_1/bias": (8,),
    "MlpBlock_0/Dense_0/kernel": (8, 16),
    "MlpBlock_0/Dense_0/bias": (16,),
    "MlpBlock_0/Dense_1/kernel": (16, 8),
    "MlpBlock_0/Dense_1/bias": (8,),
}


def test_param_tree_matches_big_vision_layout():
    expected = {
        "params/embedding/kernel": (4, 4, 3, 8),
        "params/embedding/bias": (8,),
        "params/pos_embedding": (1, 4, 8),  # Patches only: added before `cls` is prepended.
        "params/cls": (1, 1, 8),
        "params/Transformer/encoder_norm/scale": (8,),
        "params/Transformer/encoder_norm/bias": (8,),
        "params/head/kernel": (8, 3),
        "params/head/bias": (3,),
    }
    for i in range(2):
        expected.update(
            {f"params/Transformer/encoderblock_{i}/{k}": v for k, v in BLOCK_PARAMS.items()}
        )
    assert shapes(abstract_init(tiny(), IMAGE)) == expected


def test_param_tree_scanned_map_sincos_pre_logits():
    model = tiny(scan=True, pool_type="map", posemb="sincos2d", representation_size=6)
    got = shapes(abstract_init(model, IMAGE))
    expected = {
        "params/embedding/kernel": (4, 4, 3, 8),
        "params/embedding/bias": (8,),
        "params/Transformer/encoder_norm/scale": (8,),
        "params/Transformer/encoder_norm/bias": (8,),
        "params/MAPHead_0/probe": (1, 1, 8),
        "params/pre_logits/kernel": (8, 6),
        "params/pre_logits/bias": (6,),
        "params/head/kernel": (6, 3),
        "params/head/bias": (3,),
    }
    expected.update(
        {f"params/Transformer/encoderblock/{k}": (2, *v) for k, v in BLOCK_PARAMS.items()}
    )
    expected.update(
        {
            f"params/MAPHead_0/{k}": v
            for k, v in BLOCK_PARAMS.items()
            if not k.startswith("LayerNorm_1")
        }
    )
    assert got == expected


def count_params(model, image_size=224):
    variables = abstract_init(model, jnp.zeros((1, image_size, image_size, 3)))
    return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(nn.unbox(variables)))


def test_vit_b16_param_count():
    # The ViT paper / timm count 86,567,656 has a (1, 197, 768) position embedding that
    # covers the class token; big_vision's layout (ours) adds position embeddings to the
    # 196 patches only, so it has 768 fewer params. Converting either checkpoint to the other
    # is exact (the class token's position embedding folds into `cls`).
    b16 = ViT(num_classes=1000, **vit_config("B/16"))
    assert count_params(b16) == 86_567_656 - 768 == 86_566_888


@pytest.mark.parametrize(
    "pool_type, num_classes, shape",
    [
        ("token", 3, (2, 3)),
        ("gap", 3, (2, 3)),
        ("map", 3, (2, 3)),
        ("none", 3, (2, 4, 3)),
        ("token", 0, (2, 8)),
        ("gap", None, (2, 8)),
        ("map", 0, (2, 8)),
        ("none", 0, (2, 4, 8)),
    ],
)
def test_output_shapes(pool_type, num_classes, shape):
    model = tiny(pool_type=pool_type, num_classes=num_classes)
    y = model.apply(init(model, IMAGE), IMAGE)
    assert y.shape == shape
    assert y.dtype == jnp.float32


def test_return_intermediates():
    model = tiny()
    logits, out = model.apply(init(model, IMAGE), IMAGE, return_intermediates=True)
    assert out["stem"].shape == (2, 2, 2, 8)
    assert out["encoded"].shape == (2, 5, 8)
    assert out["pre_logits"].shape == (2, 8)
    assert out["logits"] is logits


def test_real_init_values_and_dtypes():
    model = tiny(dtype="bfloat16")
    params = nn.unbox(jax.jit(model.init)(KEY, IMAGE))["params"]
    assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(params))
    assert not params["head"]["kernel"].any()  # head_zeroinit
    assert not params["cls"].any()
    assert params["embedding"]["kernel"].std() > 0
    assert params["Transformer"]["encoderblock_1"]["LayerNorm_0"]["scale"].min() == 1.0


def test_scan_matches_unscanned():
    variables = init(tiny(), IMAGE)
    p = variables["params"]
    blocks = [p["Transformer"][f"encoderblock_{i}"] for i in range(2)]
    stacked = {
        **{k: v for k, v in p.items() if k != "Transformer"},
        "Transformer": {
            "encoderblock": jax.tree.map(lambda *xs: jnp.stack(xs), *blocks),
            "encoder_norm": p["Transformer"]["encoder_norm"],
        },
    }
    y = tiny().apply(variables, IMAGE)
    np.testing.assert_allclose(tiny(scan=True).apply({"params": stacked}, IMAGE), y, atol=1e-5)


def test_remat_same_output():
    variables = init(tiny(), IMAGE)
    y = tiny().apply(variables, IMAGE)
    y_remat = tiny(remat=True, remat_policy="dots_saveable").apply(variables, IMAGE)
    np.testing.assert_allclose(y_remat, y, atol=1e-6)


@pytest.mark.parametrize("dtype", ["bfloat16", jnp.bfloat16])
def test_bf16_compute_close_to_f32(dtype):
    variables = init(tiny(), IMAGE)
    y32 = tiny().apply(variables, IMAGE)
    abstract = nn.unbox(abstract_init(tiny(dtype=dtype), IMAGE))
    assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(abstract))
    y16 = tiny(dtype=dtype).apply(variables, IMAGE)
    assert y16.dtype == jnp.float32
    np.testing.assert_allclose(y16, y32, atol=0.05, rtol=0.05)


def test_dropout_and_stochastic_depth_train_only():
    variables = init(tiny(), IMAGE)
    model = tiny(dropout=0.1, stochastic_depth=0.3)
    np.testing.assert_allclose(model.apply(variables, IMAGE), tiny().apply(variables, IMAGE))
    train = jax.jit(lambda rng: model.apply(variables, IMAGE, train=True, rngs={"dropout": rng}))
    assert not np.allclose(train(jax.random.key(1)), train(jax.random.key(2)))


@pytest.mark.parametrize(
    "kw", [dict(representation_size=6), dict(scan=True, pool_type="map", remat=True)]
)
def test_every_param_has_logical_axes(kw):
    variables = abstract_init(tiny(**kw), IMAGE)
    flat_specs, flat_shapes = specs(variables), shapes(variables)
    assert set(flat_specs) == set(flat_shapes)
    for name, spec in flat_specs.items():
        assert len(spec) == len(flat_shapes[name]), name
        assert set(spec) <= ALLOWED_AXES, (name, spec)
    assert flat_specs["params/embedding/kernel"] == (None, None, None, "embed")
    assert flat_specs["params/head/kernel"] == ("embed", "classes")
    assert flat_specs["params/head/bias"] == ("classes",)
    if kw.get("scan"):
        assert flat_specs["params/MAPHead_0/probe"] == (None, None, "embed")
        assert flat_specs["params/Transformer/encoderblock/MlpBlock_0/Dense_0/kernel"] == (
            "layers",
            "embed",
            "mlp",
        )
    else:
        assert flat_specs["params/pos_embedding"] == (None, None, "embed")
        assert flat_specs["params/cls"] == (None, None, "embed")
        assert flat_specs["params/pre_logits/kernel"] == ("embed", "mlp")


def test_registered_classifier_matches_vit():
    assert registry.MODELS.get("vit_classification") is ViTClassifier
    assert vit_module.ViTClassifier is ViTClassifier
    model = registry.MODELS.build("vit_classification", {**TINY, "num_classes": 3}, "model")
    batch = {"image": IMAGE, "label": jnp.zeros((2,), jnp.int32)}
    assert shapes(abstract_init(model, batch)) == shapes(abstract_init(tiny(), IMAGE))
    variables = init(tiny(), IMAGE)
    np.testing.assert_allclose(
        model.apply(variables, batch, train=False), tiny().apply(variables, IMAGE)
    )


def test_bad_options_raise():
    with pytest.raises(ValueError, match="pool_type"):
        abstract_init(tiny(pool_type="cls"), IMAGE)
    with pytest.raises(ValueError, match="posemb"):
        abstract_init(tiny(posemb="sincos"), IMAGE)
    with pytest.raises(ValueError, match="remat_policy"):
        abstract_init(tiny(remat=True, remat_policy="full"), IMAGE)


def test_vit_config_parsing():
    assert vit_config("B/16") == dict(
        hidden_size=768, depth=12, mlp_dim=3072, num_heads=12, patch_size=(16, 16)
    )
    assert vit_config("So400m/14") == dict(
        hidden_size=1152, depth=27, mlp_dim=4304, num_heads=16, patch_size=(14, 14)
    )
    assert vit_config("g/14")["hidden_size"] == 1408
    assert vit_config("G/14")["hidden_size"] == 1664
    assert vit_config("L") == dict(hidden_size=1024, depth=24, mlp_dim=4096, num_heads=16)
    for width, _, _, heads in VIT_SIZES.values():
        assert width % heads == 0 and width % 4 == 0


@pytest.mark.parametrize("bad", ["X/16", "b/16", "B/", "B/sixteen", "B/0", ""])
def test_vit_config_bad_names(bad):
    with pytest.raises(ValueError, match="known sizes|Known sizes") as err:
        vit_config(bad)
    assert "So400m" in str(err.value)


def test_small_presets_param_counts():
    # timm counts minus the class token's position embedding (see test_vit_b16_param_count).
    assert count_params(ViT(num_classes=1000, **vit_config("Ti/16"))) == 5_717_416 - 192
    assert count_params(ViT(num_classes=1000, **vit_config("S/16"))) == 22_050_664 - 384
