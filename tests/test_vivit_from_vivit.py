"""A Kinetics ViViT checkpoint initialises an SSv2 / Epic-Kitchens ViViT: the "vivit.from_vivit"
init adapter, from our checkpoint (a Tessera params checkpoint) and from Scenic's layout."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import projects.vivit  # noqa: F401  (registers the adapters)
from framework import config as config_lib
from framework import pretrained, registry
from framework.pretrained import IncompatibleCheckpointError
from projects.vivit.backbone import ViViT
from tools import cli, convert_checkpoint

TINY = dict(hidden_size=16, depth=2, mlp_dim=32, num_heads=2, temporal_depth=1)
K400 = jnp.asarray(np.random.default_rng(0).normal(size=(2, 8, 16, 16, 3)), jnp.float32)
SSV2 = jnp.zeros((1, 16, 20, 20, 3))  # Twice the frames, a 5x5 patch grid instead of 4x4.


def vivit(num_classes, variant="factorised_encoder", pool_type="token", **kw):
    return ViViT(variant=variant, pool_type=pool_type, num_classes=num_classes,
                 patch_size=(2, 4, 4), **{**TINY, **kw})


def abstract(model, video):
    return nn.unbox(jax.eval_shape(lambda: model.init(jax.random.key(0), video)))["params"]


def kinetics_params(model):
    """Random non-trivial params of `model` on K400 clips (flat {key: np.ndarray})."""
    rng = np.random.default_rng(1)
    return {k: rng.normal(0, 0.3, s.shape).astype(np.float32)
            for k, s in pretrained.flatten_tree(abstract(model, K400)).items()}


def as_scenic(flat):
    """Our FE params renamed to Scenic's layout (class tokens carry no position row there,
    so row 0 of its position embeddings is set to zero and the class token kept)."""
    out = {}
    for key, value in flat.items():
        if key in ("pos_embedding", "temporal_pos_embedding"):
            name = "SpatialTransformer" if key == "pos_embedding" else "TemporalTransformer"
            out[f"{name}/posembed_input/pos_embedding"] = np.concatenate(
                [np.full_like(value[:, :1], 0.5), value], axis=1)
        elif key in ("cls", "temporal_cls"):
            name = "SpatialTransformer" if key == "cls" else "TemporalTransformer"
            out[f"cls_{name}"] = value - 0.5
        elif key.startswith("head/"):
            out["output_projection/" + key[5:]] = value
        else:
            out[key] = value
    return out


@pytest.fixture(scope="module")
def tessera_kinetics(tmp_path_factory):
    """(our Kinetics FE params, path of the Tessera checkpoint holding them)."""
    flat = kinetics_params(vivit(3))
    workdir = str(tmp_path_factory.mktemp("k400") / "workdir")
    convert_checkpoint.write_params_only(flat, workdir, "test")
    return flat, workdir


def notes_of(report):
    return {key: note for key, note, *_ in report.rows}


def check_only_head_new(report, head_keys):
    notes = notes_of(report)
    new = sorted(k for k, n in notes.items() if n.startswith("init"))
    assert new == ["head/bias", "head/kernel"], new
    assert all(n.startswith(("loaded", "resized")) for k, n in notes.items() if k not in new)
    assert sorted(report.unused) == sorted(head_keys)


@pytest.mark.parametrize("layout", ["tessera", "scenic"])
def test_kinetics_checkpoint_initialises_ssv2_and_epic_kitchens(tessera_kinetics, layout):
    flat, path = tessera_kinetics
    init_from = {"path": path, "adapter": "vivit.from_vivit"}
    if layout == "tessera":  # Read once, by the reader init_from uses.
        source, head = pretrained.load_flat_params(path), ["head/bias", "head/kernel"]
    else:
        source, head = as_scenic(flat), ["output_projection/bias", "output_projection/kernel"]
    # SSv2: 174 -> here 5 classes, twice the frames, a larger crop.
    ssv2 = vivit(5)
    params, report = pretrained.load_params(abstract(ssv2, SSV2), init_from, source)
    check_only_head_new(report, head)
    notes = notes_of(report)
    assert notes["temporal_pos_embedding"].startswith(
        "resized (1, 4, 16) -> (1, 8, 16) (interpolated over time)")
    assert notes["pos_embedding"].startswith("resized (1, 16, 16) -> (1, 25, 16)")
    want = pretrained.resize_posemb_grid(flat["temporal_pos_embedding"], (8,))
    np.testing.assert_allclose(params["temporal_pos_embedding"], want, atol=1e-6)
    block = "SpatialTransformer/encoderblock_1/MlpBlock_0/Dense_0/kernel"
    np.testing.assert_array_equal(pretrained.flatten_tree(params)[block], flat[block])
    np.testing.assert_allclose(params["cls"], flat["cls"], atol=1e-6)  # Scenic's: folded.

    # Epic-Kitchens: the same clips, verbs + nouns in one head. The backbone computes the
    # Kinetics model's features exactly (checked once: Scenic's layout, the one renamed).
    ek = vivit(7)
    params, report = pretrained.load_params(abstract(ek, K400), init_from, source)
    check_only_head_new(report, head)
    if layout == "tessera":
        return
    params = jax.tree.map(lambda x: jnp.asarray(x) if isinstance(x, np.ndarray)
                          else jnp.zeros(x.shape, x.dtype), params)  # The new head: zeros.
    _, ours = ek.apply({"params": params}, K400, return_intermediates=True)
    _, theirs = vivit(3).apply({"params": pretrained.unflatten(flat)}, K400,
                               return_intermediates=True)
    np.testing.assert_allclose(ours["pre_logits"], theirs["pre_logits"], atol=1e-5)


@pytest.mark.parametrize("variant,pool_type", [("spatio_temporal", "token"),
                                               ("factorised_self_attention", "gap"),
                                               ("factorised_dot_product", "gap")])
def test_joint_position_embedding_interpolated_over_frames(variant, pool_type):
    flat = kinetics_params(vivit(3, variant, pool_type))
    target = abstract(vivit(5, variant, pool_type), jnp.zeros((1, 16, 16, 16, 3)))
    init_from = {"path": "", "adapter": "vivit.from_vivit"}
    with pytest.raises(IncompatibleCheckpointError, match="options.token_grid"):
        pretrained.load_params(target, init_from, flat)
    params, report = pretrained.load_params(
        target, {**init_from, "options": {"token_grid": (8, 4, 4)}}, flat)
    check_only_head_new(report, ["head/bias", "head/kernel"])
    grid = np.asarray(params["pos_embedding"]).reshape(8, 4, 4, 16)
    source = flat["pos_embedding"].reshape(4, 4, 4, 16)
    want = np.asarray(jax.image.resize(source, (8, 4, 4, 16), "linear"))
    np.testing.assert_allclose(grid, want, atol=1e-6)
    assert notes_of(report)["pos_embedding"].endswith("(grid (4, 4, 4) -> (8, 4, 4))")


def test_mismatches_are_errors_naming_the_fix(tessera_kinetics):
    flat = tessera_kinetics[0]
    init_from = {"path": "", "adapter": "vivit.from_vivit"}
    with pytest.raises(IncompatibleCheckpointError, match=r"tubelet spans 2 frames.*patch_size"):
        model = ViViT(variant="factorised_encoder", num_classes=5, patch_size=(4, 4, 4), **TINY)
        pretrained.load_params(abstract(model, K400), init_from, flat)
    shallow = abstract(vivit(5, depth=1), K400)  # The checkpoint's block 1 has no place.
    with pytest.raises(IncompatibleCheckpointError,
                       match=r"no place for.*\n  SpatialTransformer/encoderblock_1/"):
        pretrained.load_params(shallow, init_from, flat)
    _, report = pretrained.load_params(
        shallow, {**init_from, "options": {"allow_unused": ("encoderblock_1/",)}}, flat)
    assert "SpatialTransformer/encoderblock_1/LayerNorm_0/scale" in report.unused
    deep = abstract(vivit(5, temporal_depth=2), K400)  # Block 1 of the temporal encoder.
    with pytest.raises(IncompatibleCheckpointError,
                       match=r"does not hold.*\n  TemporalTransformer/encoderblock_1/"):
        pretrained.load_params(deep, init_from, flat)
    with pytest.raises(IncompatibleCheckpointError, match="vivit.from_vivit"):
        pretrained.load_params(deep, {"path": "", "adapter": "vivit.from_vit"}, flat)


def test_scenic_epic_kitchens_head_is_reordered_verbs_first(tessera_kinetics):
    # Scenic's Epic-Kitchens head: nouns (here 4) then verbs (3); ours: verbs then nouns.
    flat = dict(tessera_kinetics[0])
    rng = np.random.default_rng(3)
    flat["head/kernel"], flat["head/bias"] = rng.normal(size=(16, 7)), rng.normal(size=(7,))
    init_from = {"path": "", "adapter": "vivit.from_vivit",
                 "options": {"load_head": True, "head_columns_last": 4}}
    params, report = pretrained.load_params(abstract(vivit(7), K400), init_from,
                                            as_scenic(flat))
    assert report.unused == [] and report.count("init") == 0
    np.testing.assert_allclose(params["head"]["kernel"][:, :3], flat["head/kernel"][:, 4:])
    np.testing.assert_allclose(params["head"]["bias"][3:], flat["head/bias"][:4])
    assert notes_of(report)["head/bias"] == (
        "loaded (its first 4 classes moved last) from output_projection/bias")


@pytest.mark.parametrize("config_file", ["ssv2_vivit.py", "epic_kitchens_vivit.py"])
def test_paper_configs_initialise_from_a_kinetics_vivit(config_file):
    # The configs' own init_from (adapter and options) on their real clips and crops, with the
    # model shrunk: the K400 FE's 14x14 grid is resized for SSv2's 256 crop, only `head` is new.
    shrink = ["--config.model.hidden_size=16", "--config.model.mlp_dim=32",
              "--config.model.num_heads=2", "--config.model.depth=1"]
    kinetics = cli.load_config("projects/vivit/configs/kinetics400_vivit.py:L/16x2-FE",
                               shrink + ["--config.model.temporal_depth=4"])
    config = cli.load_config(f"projects/vivit/configs/{config_file}", shrink)
    flat = kinetics_params_of(kinetics)
    init_from = dict(config.init_from.to_dict(), path="(a Kinetics-400 checkpoint)")
    params, report = pretrained.load_params(model_params(config), init_from, flat)
    check_only_head_new(report, ["head/bias", "head/kernel"])
    assert params["head"]["kernel"].shape[1] == config.model.num_classes


def model_params(config):
    """Abstract params of `config`'s model on one example of its `model_input`."""
    model = registry.MODELS.build(config.model.name, config_lib.kwargs_of(config.model),
                                  "config.model")
    spec = config.model_input.video
    shape = tuple(int(d) for d in spec[spec.index("[") + 1:-1].split(","))
    return nn.unbox(jax.eval_shape(lambda: model.init(
        jax.random.key(0), {"video": jnp.zeros((1, *shape))})))["params"]


def kinetics_params_of(config):
    rng = np.random.default_rng(2)
    return {k: rng.normal(0, 0.3, s.shape).astype(np.float32)
            for k, s in pretrained.flatten_tree(model_params(config)).items()}
