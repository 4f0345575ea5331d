"""ViViT initialised from a 2D image ViT: the "vivit.from_vit" init adapter."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import projects.vivit  # noqa: F401  (registers the "vivit" adapter)
from framework import pretrained
from framework.models.vit import ViT
from framework.pretrained import IncompatibleCheckpointError
from projects.vivit.backbone import ViViT

TINY = dict(hidden_size=16, depth=2, mlp_dim=32, num_heads=2)
IMAGES = jnp.asarray(np.random.default_rng(0).normal(size=(2, 16, 16, 3)), jnp.float32)
CLIP = jnp.repeat(IMAGES[:, None], 4, axis=1)  # Four identical frames.


def saved_vit(tmp_path, pool_type, scenic_layout=False):
    """Returns (ViT, params, path of its .npz): random non-trivial weights, 4x4 patches."""
    vit = ViT(num_classes=5, patch_size=(4, 4), pool_type=pool_type, **TINY)
    params = nn.unbox(vit.init(jax.random.key(0), IMAGES)["params"])
    leaves, treedef = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.key(1), len(leaves))
    params = jax.tree.unflatten(treedef, [x + 0.2 * jax.random.normal(k, x.shape)
                                          for x, k in zip(leaves, keys)])
    flat = pretrained.flatten_tree(params)
    if scenic_layout:  # Scenic: the posemb covers the class token and sits in Transformer.
        posemb = flat.pop("pos_embedding")
        flat["Transformer/posembed_input/pos_embedding"] = np.concatenate(
            [np.zeros_like(posemb[:, :1]), posemb], axis=1)
        flat["output_projection/kernel"] = flat.pop("head/kernel")
        flat["output_projection/bias"] = flat.pop("head/bias")
    path = str(tmp_path / f"vit_{pool_type}.npz")
    pretrained.save_npz(path, pretrained.unflatten(flat))
    return vit, params, path


def init_vivit(model, path, video=CLIP, **options):
    """Returns (ViViT params loaded from `path` by the vivit adapter, LoadReport)."""
    abstract = nn.unbox(jax.eval_shape(lambda: model.init(jax.random.key(2), video)))["params"]
    params = jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), abstract)
    loaded, report = pretrained.load_params(
        params, {"path": path, "adapter": "vivit.from_vit", "options": options})
    return jax.tree.map(jnp.asarray, loaded), report


def vivit(variant, pool_type, **kw):
    return ViViT(variant=variant, pool_type=pool_type, num_classes=7, patch_size=(2, 4, 4),
                 temporal_depth=1, **TINY, **kw)


@pytest.mark.parametrize("scenic_layout", [False, True])
def test_factorised_encoder_spatial_features_equal_image_model(tmp_path, scenic_layout):
    vit, vit_params, path = saved_vit(tmp_path, "token", scenic_layout)
    _, image = vit.apply({"params": vit_params}, IMAGES, return_intermediates=True)
    model = vivit("factorised_encoder", "token")
    params, report = init_vivit(model, path)
    _, video = model.apply({"params": params}, CLIP, return_intermediates=True)
    for t in range(video["spatial_encoded"].shape[1]):
        np.testing.assert_allclose(video["stem"][:, t], image["stem"], atol=1e-5)
        np.testing.assert_allclose(video["spatial_encoded"][:, t], image["encoded"], atol=1e-5)
    notes = {key: note for key, note, *_ in report.rows}
    assert notes["embedding/kernel"].startswith("inflated (4, 4, 3, 16) -> (2, 4, 4, 3, 16)")
    assert notes["head/kernel"].startswith("init") and notes["temporal_cls"].startswith("init")
    assert notes["SpatialTransformer/encoderblock_1/MlpBlock_0/Dense_0/kernel"] == (
        "loaded from Transformer/encoderblock_1/MlpBlock_0/Dense_0/kernel")
    assert notes["TemporalTransformer/encoderblock_0/LayerNorm_0/scale"].startswith("init")


@pytest.mark.parametrize("variant", ["spatio_temporal", "factorised_self_attention"])
@pytest.mark.parametrize("inflation", ["central_frame", "average"])
def test_joint_models_see_identical_frames_as_the_image(tmp_path, variant, inflation):
    # Without a class token, attention over identical frames (model 1) or a zero-initialised
    # temporal attention (model 3) leaves each frame's tokens as the image model's.
    vit, vit_params, path = saved_vit(tmp_path, "gap")
    _, image = vit.apply({"params": vit_params}, IMAGES, return_intermediates=True)
    model = vivit(variant, "gap")
    params, report = init_vivit(model, path, inflation=inflation)
    _, video = model.apply({"params": params}, CLIP, return_intermediates=True)
    frames = video["encoded"].reshape((2, 2) + image["encoded"].shape[1:])
    for t in range(2):
        np.testing.assert_allclose(frames[:, t], image["encoded"], atol=1e-4)
    notes = {key: note for key, note, *_ in report.rows}
    assert notes["pos_embedding"].startswith("repeated over 2 frames (1, 16, 16) -> (1, 32, 16)")
    if variant == "factorised_self_attention":
        kernel = params["Transformer"]["encoderblock_0"]["MultiHeadDotProductAttention_time"]
        assert not np.any(kernel["out"]["kernel"]) and not np.any(kernel["query"]["kernel"])
        space_norm = notes["Transformer/encoderblock_0/LayerNorm_space/scale"]
        assert space_norm.endswith("LayerNorm_0/scale")


def test_dot_product_model_loads_every_image_param(tmp_path):
    vit, vit_params, path = saved_vit(tmp_path, "gap")
    _, image = vit.apply({"params": vit_params}, IMAGES, return_intermediates=True)
    model = vivit("factorised_dot_product", "gap")
    params, report = init_vivit(model, path)
    _, video = model.apply({"params": params}, CLIP, return_intermediates=True)
    np.testing.assert_allclose(video["stem"][:, 1], image["stem"], atol=1e-5)
    assert report.count("init") == 2  # Only the new head.


def test_position_embeddings_resized_to_a_larger_crop(tmp_path):
    _, vit_params, path = saved_vit(tmp_path, "token")
    big = jnp.zeros((1, 4, 24, 24, 3))  # 6x6 patches instead of 4x4.
    model = vivit("spatio_temporal", "token")
    with pytest.raises(IncompatibleCheckpointError, match="token_grid"):
        init_vivit(model, path, video=big)
    params, _ = init_vivit(model, path, video=big, token_grid=(2, 6, 6))
    want = pretrained.resize_posemb_grid(np.asarray(vit_params["pos_embedding"]), (6, 6))
    np.testing.assert_allclose(params["pos_embedding"][:, :36], want[0][None], atol=1e-6)
    np.testing.assert_allclose(params["pos_embedding"][:, 36:], want[0][None], atol=1e-6)
    fe, report = init_vivit(vivit("factorised_encoder", "token"), path, video=big)
    assert fe["pos_embedding"].shape == (1, 36, 16)
    assert dict((k, n) for k, n, *_ in report.rows)["pos_embedding"].startswith("resized")


def test_irreconcilable_shapes_are_refused(tmp_path):
    _, _, path = saved_vit(tmp_path, "token")
    wide = ViViT(variant="spatio_temporal", pool_type="token", num_classes=7,
                 patch_size=(2, 4, 4), hidden_size=8, depth=2, mlp_dim=32, num_heads=2)
    with pytest.raises(IncompatibleCheckpointError, match="embedding/kernel"):
        init_vivit(wide, path)
    with pytest.raises(IncompatibleCheckpointError, match="temporal_attention_init"):
        init_vivit(vivit("factorised_self_attention", "gap"), path,
                   temporal_attention_init="ones")
