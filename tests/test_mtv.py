"""MTV (projects/mtv): views, fusion layers, paper costs (abstract builds), the 'mtv.from_vit'
adapter."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen as nn
from init_helpers import sum_of_squares_and_grads

from framework import config as config_lib
from framework import pretrained
from framework.flops import model_cost
from framework.models.vit import ViT
from framework.registry import ConfigError
from projects.mtv.model import MTV
from projects.mtv.views import parse_views
from tools import cli

VIDEO = {"video": jnp.asarray(np.random.default_rng(0).normal(size=(2, 8, 16, 16, 3)),
                              jnp.float32)}
GLOBAL = dict(depth=1, mlp_dim=32, num_heads=2)


def tiny_views(patch=4):
    """Two views: width 8 on 4-frame tubelets, width 16 on 2-frame tubelets."""
    return (dict(hidden_size=8, depth=2, mlp_dim=16, num_heads=2, tubelet=(4, patch, patch)),
            dict(hidden_size=16, depth=2, mlp_dim=32, num_heads=2, tubelet=(2, 4, 4)))


def tiny_mtv(**kw):
    return MTV(**{"num_classes": 3, "views": tiny_views(), "fusion_layers": (0, 1),
                  "global_encoder": GLOBAL, **kw})


def init_params(model):
    """Params of `model`, drawn with numpy (no init compile)."""
    rng = np.random.default_rng(1)
    abstract = nn.unbox(jax.eval_shape(lambda: model.init(jax.random.key(0), VIDEO)))["params"]
    return jax.tree.map(lambda s: jnp.asarray(rng.normal(0, 0.2, s.shape), s.dtype), abstract)


def test_parse_views_orders_widest_first_and_rejects_bad_specs():
    views = parse_views("B/2+S/4+Ti/8")
    assert [v["hidden_size"] for v in views] == [192, 384, 768]
    assert [v["tubelet"] for v in views] == [(8, 16, 16), (4, 16, 16), (2, 16, 16)]
    assert parse_views("L/14x2")[0]["tubelet"] == (2, 14, 14)
    with pytest.raises(ValueError, match="expected SIZE/T"):
        parse_views("B/2+X/4")


@pytest.mark.parametrize("fusion", ["cross_view_attention", "bottleneck", "mlp", "none"])
def test_fusion_types_give_logits_and_their_params(fusion):
    model = tiny_mtv(fusion=fusion)
    params = init_params(model)
    logits = model.apply({"params": params}, VIDEO, train=False)
    assert logits.shape == (2, 3) and logits.dtype == jnp.float32
    names = set(params["MultiviewEncoder"])
    expected = {"cross_view_attention": "cross_attention_0_view0", "bottleneck": "bottleneck",
                "mlp": "mlp_fusion_1_view0", "none": "encoderblock_1_view1"}[fusion]
    assert expected in names
    # Clip 8 frames: view 0 has 2 temporal tokens, view 1 has 4 -> 2 segments; a segment of
    # view 1 holds 2 frames x (16 patches + class token).
    assert params["MultiviewEncoder"]["posembed_view1"].shape == (1, 34, 16)
    assert params["cls_view0"].shape == (1, 2, 1, 8)
    assert params["global_posembed"].shape == (1, 5, 24)  # 4 frames + class; 8 + 16 channels.


def test_time_merge_projects_views_into_the_global_width():
    model = tiny_mtv(global_encoder=dict(GLOBAL, hidden_size=12, merge_axis="time"),
                     classifier="gap")
    out, variables = jax.eval_shape(lambda: model.init_with_output(jax.random.key(0), VIDEO))
    params = nn.unbox(variables)["params"]
    assert out.shape == (2, 3)
    assert params["global_encoder_linear_view0"]["kernel"].shape == (8, 12)
    # 2 + 4 per-frame features in time, no class tokens with 'gap'.
    assert params["global_posembed"].shape == (1, 6, 12)
    assert "cls_view0" not in params and "cls_global" not in params


def test_cross_view_attention_starts_as_identity():
    fused, plain = tiny_mtv(), tiny_mtv(fusion="none")
    params = nn.unbox(fused.init(jax.random.key(0), VIDEO))["params"]
    encoder = jax.tree.map(lambda x: x, dict(params["MultiviewEncoder"]))
    for name in [k for k in encoder if k.startswith("cross_attention_")]:
        out = encoder[name]["MultiHeadDotProductAttention_0"]["out"]
        assert not np.any(np.asarray(out["kernel"]))  # Zero-initialised out projection.
    # Give the other params some size so that the check is not trivially about zeros.
    rng = np.random.default_rng(3)
    params = {**params, "output_projection": jax.tree.map(
        lambda x: jnp.asarray(rng.normal(size=x.shape), x.dtype), params["output_projection"])}
    params_plain = {**params, "MultiviewEncoder": {
        k: v for k, v in encoder.items() if not k.startswith("cross_attention_")}}
    np.testing.assert_allclose(fused.apply({"params": params}, VIDEO),
                               plain.apply({"params": params_plain}, VIDEO), rtol=1e-5,
                               atol=1e-6)
    # With a non-zero out projection the lateral connection changes the output.
    encoder["cross_attention_1_view0"] = jax.tree.map(
        jnp.ones_like, encoder["cross_attention_1_view0"])
    changed = fused.apply({"params": {**params, "MultiviewEncoder": encoder}}, VIDEO)
    assert not np.allclose(changed, fused.apply({"params": params}, VIDEO), atol=1e-4)


@pytest.mark.parametrize("fusion", ["cross_view_attention", "bottleneck", "mlp"])
def test_gradients_reach_the_lateral_connections(fusion):
    model = tiny_mtv(fusion=fusion)
    params = init_params(model)
    labels = jnp.asarray([0, 2])

    def loss(p):
        logits = model.apply({"params": p}, VIDEO, train=False)
        return -jnp.mean(jax.nn.log_softmax(logits)[jnp.arange(2), labels])

    grads = jax.jit(jax.grad(loss))(params)["MultiviewEncoder"]
    lateral = [v for k, v in grads.items() if not k.startswith(("encoderblock", "posembed"))]
    assert lateral and all(float(jnp.abs(g).sum()) > 0 for g in jax.tree.leaves(lateral))


def test_remat_keeps_params_loss_and_gradients():
    plain = tiny_mtv()
    remat = tiny_mtv(remat=True, remat_policy="dots_saveable")
    params = init_params(plain)
    shapes = jax.tree.map(jnp.shape, init_params(remat))
    assert shapes == jax.tree.map(jnp.shape, params)

    def loss_and_grads(model, p):
        return sum_of_squares_and_grads(
            lambda q: model.apply({"params": q}, VIDEO, train=False), p)

    (loss, grads), (want_loss, want_grads) = (loss_and_grads(m, params) for m in (remat, plain))
    np.testing.assert_allclose(loss, want_loss, rtol=1e-5)
    for got, want in zip(jax.tree.leaves(grads), jax.tree.leaves(want_grads)):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
    # The rematted step really recomputes: its backward pass holds checkpointed calls.
    jaxpr = str(jax.make_jaxpr(lambda p: loss_and_grads(remat, p))(params))
    assert "remat" in jaxpr or "checkpoint" in jaxpr


def test_cross_view_attention_width_follows_use_query_config():
    """View 0 (width 8) attends to view 1 (width 16): q/k/v in view 0's width by default,
    in view 1's with use_query_config=False; the output comes back to width 8 either way."""
    for flag, width in ((True, 8), (False, 16)):
        model = tiny_mtv(use_query_config=flag)
        params = init_params(model)
        attention = params["MultiviewEncoder"]["cross_attention_0_view0"][
            "MultiHeadDotProductAttention_0"]
        assert attention["query"]["kernel"].shape == (8, 2, width // 2)
        assert attention["key"]["kernel"].shape == (16, 2, width // 2)
        assert attention["out"]["kernel"].shape == (2, width // 2, 8)
        logits = model.apply({"params": params}, VIDEO)
        assert logits.shape == (2, 3) and bool(jnp.all(jnp.isfinite(logits)))


def test_bad_configs_raise_clear_errors():
    with pytest.raises(ValueError, match="fusion="):
        tiny_mtv(fusion="concat").apply({"params": {}}, VIDEO)
    with pytest.raises(ValueError, match="fusion_layers"):
        tiny_mtv(fusion_layers=(2,)).apply({"params": {}}, VIDEO)
    with pytest.raises(ValueError, match="same tokens per frame"):
        jax.eval_shape(lambda: tiny_mtv(fusion="mlp", views=tiny_views(patch=8)).init(
            jax.random.key(0), VIDEO))
    odd = (dict(hidden_size=8, depth=1, mlp_dim=16, num_heads=2, tubelet=(3, 4, 4)),
           dict(hidden_size=8, depth=1, mlp_dim=16, num_heads=2, tubelet=(2, 4, 4)))
    with pytest.raises(ValueError, match="do not divide the clip"):
        jax.eval_shape(lambda: tiny_mtv(views=odd, fusion_layers=(0,)).init(
            jax.random.key(0), VIDEO))


# Paper: Kinetics-400 table, params and TFLOPs for 4 x 3 views (per view = / 12); its
# "MTV-B (320p)" row: 310M, 11.16 TFLOPs.
@pytest.mark.parametrize("variant", ["B", "L", "B-320p"])
def test_paper_params_and_gflops_per_view(variant):
    config = cli.load_config(
        f"projects/mtv/configs/kinetics400_mtv.py:{variant.removesuffix('-320p')}")
    ref = config.reference
    if variant == "B-320p":
        config.model_input.video = "float32[32,320,320,3]"
        ref.gflops = 11160 / 12
    assert config.model.use_query_config is False
    params, gflops = model_cost(MTV(**config_lib.kwargs_of(config.model)), config.model_input)
    assert abs(params / ref.params - 1) < 0.01, params
    assert abs(gflops / ref.gflops - 1) < 0.05, gflops
    # Scenic's released setting (cross-view attention in the querying view's width) lands
    # below the table: see projects/mtv/README.md ("Costs").
    config.model.use_query_config = True
    released = model_cost(MTV(**config_lib.kwargs_of(config.model)), config.model_input)
    expected = {"B": (304_801_936, 377.28), "L": (877_854_992, 1428.84),
                "B-320p": (305_624_464, 881.84)}[variant]
    assert released[0] == expected[0]
    assert released[1] == pytest.approx(expected[1], rel=1e-3)
    assert released[0] < params and released[1] < gflops


def test_mtv_adapter_maps_one_vit_per_view(tmp_path):
    vits = [ViT(num_classes=5, patch_size=(4, 4), hidden_size=w, depth=2, mlp_dim=2 * w,
                num_heads=2) for w in (8, 16)]
    paths = []
    for i, vit in enumerate(vits):
        params = init_params_2d(vit)
        paths.append(str(tmp_path / f"vit{i}.npz"))
        pretrained.save_npz(paths[-1], params)
    model = tiny_mtv()
    target = nn.unbox(jax.eval_shape(lambda: model.init(jax.random.key(0), VIDEO)))["params"]
    init_from = dict(path=paths[1], adapter="mtv.from_vit",
                     options=dict(view_paths=(paths[0], "")))
    loaded, report = pretrained.load_params(target, init_from)

    vit1 = pretrained.load_flat_params(paths[1])
    kernel = np.asarray(loaded["embedding_view1"]["kernel"])
    assert kernel.shape == (2, 4, 4, 3, 16)
    np.testing.assert_array_equal(kernel[1], vit1["embedding/kernel"])  # Central frame.
    np.testing.assert_array_equal(kernel[0], 0)
    np.testing.assert_array_equal(
        loaded["MultiviewEncoder"]["encoderblock_1_view1"]["MlpBlock_0"]["Dense_0"]["kernel"],
        vit1["Transformer/encoderblock_1/MlpBlock_0/Dense_0/kernel"])
    posemb = np.asarray(loaded["MultiviewEncoder"]["posembed_view1"]).reshape(2, 17, 16)
    np.testing.assert_array_equal(posemb[:, 0], 0)  # Class-token positions.
    np.testing.assert_array_equal(posemb[1, 1:], vit1["pos_embedding"][0])
    np.testing.assert_array_equal(np.asarray(loaded["cls_view1"])[0, :, 0],
                                  np.repeat(vit1["cls"][0], 4, axis=0))
    assert report.count("init") > 0  # Global encoder, head and fusion layers stay at init.
    assert "head/kernel" in report.unused
    assert not any(k.startswith("MultiviewEncoder/cross_attention") and not n.startswith("init")
                   for k, n, *_ in report.rows)

    with pytest.raises(ConfigError, match="would get shape"):  # Widths swapped.
        pretrained.load_params(target, dict(init_from, options=dict(view_paths=("", paths[0]))))
    with pytest.raises(ConfigError, match="2 views"):
        pretrained.load_params(target, dict(init_from, options=dict(view_paths=("",))))


def init_params_2d(vit):
    """Numpy-drawn params of an image ViT on 16x16 images."""
    rng = np.random.default_rng(2)
    image = jnp.zeros((1, 16, 16, 3))
    abstract = nn.unbox(jax.eval_shape(lambda: vit.init(jax.random.key(0), image)))["params"]
    return jax.tree.map(lambda s: np.asarray(rng.normal(0, 0.2, s.shape), s.dtype), abstract)
