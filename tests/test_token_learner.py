"""TokenLearner project: module shapes and maps, token counts after the insertion layer,
the paper configs' GFLOPs (abstract builds) and config errors."""

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from init_helpers import sum_of_squares_and_grads

from framework import config as config_lib
from framework import flops, registry
from projects.token_learner.model import TokenLearnerClassifier
from projects.token_learner.modules import TokenFuser, TokenLearnerV10, TokenLearnerV11
from tools import cli

KEY = jax.random.key(0)
IMAGENET = "projects/token_learner/configs/imagenet_token_learner.py"
KINETICS = "projects/token_learner/configs/kinetics400_token_learner.py"


def _maps(state):
    (maps,) = jax.tree.leaves(state["intermediates"])
    return np.asarray(maps)


@pytest.mark.parametrize("module", [TokenLearnerV10(num_tokens=5),
                                    TokenLearnerV11(num_tokens=5, bottleneck_dim=8)])
def test_token_learner_shapes_and_maps(module):
    x = jax.random.normal(KEY, (3, 6 * 4, 16))  # N=3 groups of a 6x4 grid, D=16.
    variables = jax.jit(module.init, static_argnums=2)(KEY, x, (6, 4))
    apply = jax.jit(partial(module.apply, mutable=["intermediates"]), static_argnums=2)
    tokens, state = apply(variables, x, (6, 4))
    maps = _maps(state)
    assert tokens.shape == (3, 5, 16)
    assert maps.shape == (3, 5, 24)
    if isinstance(module, TokenLearnerV11):
        np.testing.assert_allclose(maps.sum(-1), 1.0, rtol=1e-5)  # Softmax over positions.
    else:
        assert (maps > 0).all() and (maps < 1).all()  # Sigmoid gates.
    # Each token is its map's weighted sum of the input tokens.
    np.testing.assert_allclose(tokens, np.einsum("nsl,nld->nsd", maps, x), rtol=1e-4,
                               atol=1e-5)


def test_token_learner_rejects_a_grid_that_does_not_fit():
    x = jnp.zeros((2, 10, 8))
    with pytest.raises(ValueError, match="do not fill the grid"):
        TokenLearnerV11(num_tokens=2).init(KEY, x, (3, 3))
    with pytest.raises(ValueError, match="2D grid"):
        TokenLearnerV10(num_tokens=2).init(KEY, x, None)


def test_token_fuser_shape_and_zero_start():
    tokens = jax.random.normal(KEY, (2, 4, 16))
    original = jax.random.normal(jax.random.key(1), (2, 12, 16))
    fuser = TokenFuser(bottleneck_dim=8)
    variables = jax.jit(fuser.init)(KEY, tokens, original)
    apply = jax.jit(fuser.apply)
    out = apply(variables, tokens, original)
    assert out.shape == (2, 12, 16)
    # The token-mixing Dense starts at zero, so a fresh fuser adds nothing to the residual.
    np.testing.assert_allclose(out, 0.0, atol=1e-6)
    variables = jax.tree.map(lambda v: v + 0.1, variables)
    assert np.abs(apply(variables, tokens, original)).max() > 1e-3


def _intermediates(model):
    """Returns a function batch -> the intermediates of model (every module's output)."""
    def run(batch):
        variables = model.init(KEY, batch)
        return model.apply(variables, batch, capture_intermediates=True,
                           mutable=["intermediates"])[1]

    return run


def _block_lengths(model, batch):
    """Returns the sequence length each encoder block outputs, built abstractly."""
    inter = jax.eval_shape(_intermediates(model), batch)["intermediates"]["Transformer"]
    return [inter[f"encoderblock_{i}"]["__call__"][0].shape[1] for i in range(model.depth)]


TINY = dict(num_classes=3, hidden_size=16, depth=4, mlp_dim=32, num_heads=2, num_tokens=5)
IMAGE = {"image": jax.ShapeDtypeStruct((2, 16, 24, 3), jnp.float32)}
VIDEO = {"video": jax.ShapeDtypeStruct((2, 6, 16, 16, 3), jnp.float32)}


@pytest.mark.parametrize("kwargs,batch,lengths", [
    (dict(patch_size=(4, 4)), IMAGE, [24, 5, 5, 5]),
    (dict(patch_size=(4, 4), tokenlearner_version="1.0"), IMAGE, [24, 5, 5, 5]),
    (dict(patch_size=(4, 4), use_token_fuser=True), IMAGE, [24, 5, 5, 5]),
    # 3 temporal slices of 4x4 tubelets -> 5 tokens per slice.
    (dict(patch_size=(2, 4, 4)), VIDEO, [48, 15, 15, 15]),
    (dict(patch_size=(1, 4, 4), tokenlearner_version="1.0"), VIDEO, [96, 30, 30, 30]),
    (dict(patch_size=(2, 4, 4), tokens_per="clip"), VIDEO, [48, 5, 5, 5]),
])
def test_blocks_after_the_insertion_see_num_tokens_per_group(kwargs, batch, lengths):
    model = TokenLearnerClassifier(**TINY, tokenlearner_loc=1, **kwargs)
    assert _block_lengths(model, batch) == lengths


def test_without_a_token_learner_every_block_sees_every_patch():
    model = TokenLearnerClassifier(**TINY, patch_size=(2, 4, 4), tokenlearner_loc=None)
    assert _block_lengths(model, VIDEO) == [48] * 4


def test_token_fuser_restores_the_full_sequence_for_the_head():
    model = TokenLearnerClassifier(**TINY, patch_size=(4, 4), tokenlearner_loc=2,
                                   use_token_fuser=True)
    inter = jax.eval_shape(_intermediates(model), IMAGE)["intermediates"]["Transformer"]
    assert inter["encoder_norm"]["__call__"][0].shape == (2, 24, 16)
    assert {"TokenFuser_0", "TokenFuser_1", "TokenLearnerModuleV11_1"} <= set(inter)


def test_remat_keeps_params_loss_and_gradients():
    kwargs = dict(TINY, patch_size=(4, 4), tokenlearner_loc=1, use_token_fuser=True)
    plain = TokenLearnerClassifier(**kwargs, head_zeroinit=False)
    remat = TokenLearnerClassifier(**kwargs, head_zeroinit=False, remat=True)
    image = {"image": jax.random.normal(KEY, IMAGE["image"].shape)}
    params = jax.jit(plain.init)(KEY, image)["params"]
    assert (jax.tree.map(jnp.shape, jax.eval_shape(remat.init, KEY, image)["params"])
            == jax.tree.map(jnp.shape, params))

    (loss, grads), (want_loss, want_grads) = (
        sum_of_squares_and_grads(lambda p, m=m: m.apply({"params": p}, image), params)
        for m in (remat, plain))
    np.testing.assert_allclose(loss, want_loss, rtol=1e-5)
    for got, want in zip(jax.tree.leaves(grads), jax.tree.leaves(want_grads)):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
    assert _block_lengths(remat, IMAGE) == [24, 5, 5, 5]


@pytest.mark.parametrize("kwargs,match", [
    (dict(tokenlearner_loc=4), "tokenlearner_loc=4"),
    (dict(tokenlearner_loc=1, tokenlearner_version="2.0"), "tokenlearner_version"),
    (dict(tokenlearner_loc=1, tokens_per="frame"), "tokens_per"),
    (dict(tokenlearner_loc=1, patch_size=(2, 4, 4)), "patch_size"),
])
def test_bad_model_fields_name_the_config_key(kwargs, match):
    model = TokenLearnerClassifier(**{**TINY, "patch_size": (4, 4), **kwargs})
    with pytest.raises(ValueError, match=match):
        jax.eval_shape(lambda: model.init(KEY, IMAGE))


def _cost(spec):
    config = cli.load_config(spec)
    cli.import_project(config)
    model = registry.MODELS.build(config.model.name, config_lib.kwargs_of(config.model),
                                  "config.model")
    _, gflops = flops.model_cost(model, config.model_input)
    return gflops, config.reference.gflops


@pytest.mark.parametrize("path,plain,learned", [
    (IMAGENET, "ViT-B/16", ("TL-B/16", "TL-B/16-21", "16TL-B/16-21")),
    (IMAGENET, "ViT-L/16", ("16TL-L/16",)),
    (KINETICS, "ViViT-L/16x2", ("16at12-L/16x2", "16at18-L/10x2")),
])
def test_paper_gflops_within_5_percent_and_the_drop(path, plain, learned):
    base, base_ref = _cost(f"{path}:{plain}")
    assert base == pytest.approx(base_ref, rel=0.05)
    for variant in learned:
        ours, ref = _cost(f"{path}:{variant}")
        assert ours == pytest.approx(ref, rel=0.05), variant
        # The drop relative to the plain model is the paper's.
        assert ours / base == pytest.approx(ref / base_ref, rel=0.05), variant
        if variant == learned[0]:
            assert ours < 0.6 * base  # A TokenLearner mid-network about halves the cost.
