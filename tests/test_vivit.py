"""ViViT: paper params / GFLOPs, factorised attention, sharded training of the four models."""

import json

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from framework import config as config_lib
from framework import flops, registry, trainer
from projects.vivit.backbone import VARIANTS, ViViT, sample_frames_uniformly
from projects.vivit.factorized import factorized_dot_product_attention
from tools import cli

K400 = "projects/vivit/configs/kinetics400_vivit.py"
TINY = "projects/vivit/configs/synthetic_motion_vivit.py:test"


def _model(config):
    cli.import_project(config)
    return registry.MODELS.build(config.model.name, config_lib.kwargs_of(config.model),
                                 "config.model")


@pytest.mark.parametrize("arg", ["B/16x2", "B/16x2-FE", "B/16x2-FSA", "B/16x2-FDP",
                                 "B/16x2-FE-avgpool", "L/16x2", "L/16x2-FE-128f"])
def test_kinetics_params_and_gflops_match_paper(arg):
    config = cli.load_config(f"{K400}:{arg}")
    params, gflops = flops.model_cost(_model(config), config.model_input)
    ref = config.reference
    if "params" in ref:
        assert params == pytest.approx(ref.params, rel=0.01), (params, ref.params)
    assert gflops == pytest.approx(ref.gflops, rel=0.05), (gflops, ref.gflops)


def test_factorised_dot_product_equals_masked_full_attention():
    frames, space, heads = 3, 4, 4
    rng = np.random.default_rng(0)
    q, k, v = (jnp.asarray(rng.normal(size=(2, frames * space, heads, 5)), jnp.float32)
               for _ in range(3))
    got = factorized_dot_product_attention(q, k, v, num_frames=frames)
    frame, position = np.divmod(np.arange(frames * space), space)
    same_position = position[:, None] == position[None, :]
    same_frame = frame[:, None] == frame[None, :]
    mask = np.stack([same_position] * (heads // 2) + [same_frame] * (heads // 2))[None]
    want = jax.nn.dot_product_attention(q, k, v, mask=jnp.asarray(mask))
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_token_pooling_rejected_for_factorised_attention():
    model = ViViT(variant="factorised_self_attention", pool_type="token", patch_size=(2, 4, 4),
                  hidden_size=8, depth=1, num_heads=2)
    with pytest.raises(ValueError, match="pool_type='gap'"):
        model.init(jax.random.key(0), jnp.zeros((1, 4, 8, 8, 3)))


def test_uniform_frame_sampling_takes_evenly_spaced_frames():
    video = np.broadcast_to(np.arange(8.0)[None, :, None, None, None], (2, 8, 4, 4, 3))
    np.testing.assert_array_equal(sample_frames_uniformly(video, 4)[0, :, 0, 0, 0], [0, 2, 4, 6])
    model = ViViT(variant="factorised_encoder", num_sampled_frames=3, patch_size=(1, 4, 4),
                  hidden_size=8, depth=1, mlp_dim=16, num_heads=2, temporal_depth=1)
    variables = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, 8, 8, 8, 3))))
    assert variables["params"]["temporal_pos_embedding"].value.shape == (1, 3, 8)
    with pytest.raises(ValueError, match="num_sampled_frames=9"):
        sample_frames_uniformly(video, 9)


def test_four_variants_train_on_sharded_mesh(tmp_path):
    pools = {"spatio_temporal": "token", "factorised_encoder": "token",
             "factorised_self_attention": "gap", "factorised_dot_product": "gap"}
    for variant in VARIANTS:
        workdir = tmp_path / variant
        config = cli.load_config(TINY, [
            f"data.data_dir={tmp_path / 'data'}", f"model.variant={variant}",
            f"model.pool_type={pools[variant]}", "log_every=1"])
        assert (config.mesh.fsdp, config.sharding.rules) == (-1, "fsdp")
        config.evaluators = ml_collections.ConfigDict()  # Training only: one compile each.
        result = trainer.train_and_evaluate(config, str(workdir))
        with open(workdir / "metrics.jsonl") as f:
            losses = [r["train/loss"] for r in map(json.loads, f) if "train/loss" in r]
        assert len(losses) == config.total_steps and np.all(np.isfinite(losses)), variant
        kernel = result.state.params["embedding"]["kernel"]
        assert len(kernel.sharding.device_set) == 8
        assert kernel.addressable_shards[0].data.shape[-1] == kernel.shape[-1] // 8, variant
