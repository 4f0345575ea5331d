"""Scenic's ViViT checkpoints (models 1-4) through tools.convert_checkpoint give Scenic's logits.

The reference is a NumPy forward pass written for this test from the structure of Scenic's
`projects/vivit/model.py`: a 3D-convolution tubelet embedding; models 1, 3, 4 prepend the
class token and then add `Transformer/posembed_input` (one row per token, the class token's
included); model 3's blocks attend over space then time, each with its own LayerNorm, then
the MLP; model 4's first half of the heads attend over time, the second half over space;
model 2 runs `SpatialTransformer` (class token `cls_SpatialTransformer`, its own position
embedding) on every frame and `TemporalTransformer` on the per-frame outputs; the classifier
is `output_projection`. The checkpoint is written as a flax msgpack file, as Scenic saves
them, converted into a Tessera workdir by the tool, and the workdir's params are run.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen as nn
from flax import serialization
from test_mtv_scenic import (
    _attend,
    _attention,
    _block,
    _block_forward,
    _dense,
    _layer_norm,
    _ln,
    _mlp,
)

from framework import config as config_lib
from framework import pretrained, registry
from tools import cli, convert_checkpoint

CONFIG = "projects/vivit/configs/synthetic_motion_vivit.py"
# Our synthetic variant per Scenic model: (variant, pool); the model's sizes are CONFIG's.
MODELS = {"tiny-ST": ("spatio_temporal", "token"), "tiny": ("factorised_encoder", "token"),
          "tiny-FSA": ("factorised_self_attention", "gap"),
          "tiny-FDP": ("factorised_dot_product", "gap")}
VIDEO = np.random.default_rng(0).normal(size=(2, 8, 32, 32, 3))


def _encoder(p, rng, name, model, depth, tokens, d, heads, mlp):
    """Scenic's `Encoder` params: posembed_input, encoderblock_{i}, encoder_norm."""
    p[f"{name}/posembed_input/pos_embedding"] = rng.normal(0, 0.5, (1, tokens, d))
    for layer in range(depth):
        block = f"{name}/encoderblock_{layer}"
        if model.variant != "factorised_self_attention":
            _block(p, rng, block, d, heads, mlp)
            continue
        for axis in ("space", "time"):
            _layer_norm(p, rng, f"{block}/LayerNorm_{axis}", d)
            _attention(p, rng, f"{block}/MultiHeadDotProductAttention_{axis}", d, d, heads, d)
        _layer_norm(p, rng, f"{block}/LayerNorm_mlp", d)
        _dense(p, rng, f"{block}/MlpBlock/Dense_0", d, mlp)
        _dense(p, rng, f"{block}/MlpBlock/Dense_1", mlp, d)
    _layer_norm(p, rng, f"{name}/encoder_norm", d)


def scenic_params(model, grid):
    """Random params with Scenic ViViT's names and shapes (flat) for our `model` config."""
    rng, p = np.random.default_rng(1), {}
    d, heads, mlp, token = model.hidden_size, model.num_heads, model.mlp_dim, model.pool_type
    p["embedding/kernel"] = rng.normal(0, 0.1, (*model.patch_size, 3, d))
    p["embedding/bias"] = rng.normal(0, 0.1, (d,))
    t, h, w = grid
    extra = int(token == "token")
    if model.variant == "factorised_encoder":
        for name, depth, tokens in (("SpatialTransformer", model.depth, h * w),
                                    ("TemporalTransformer", model.temporal_depth, t)):
            if extra:
                p[f"cls_{name}"] = rng.normal(0, 0.5, (1, 1, d))
            _encoder(p, rng, name, model, depth, tokens + extra, d, heads, mlp)
    else:
        if extra:
            p["cls"] = rng.normal(0, 0.5, (1, 1, d))
        _encoder(p, rng, "Transformer", model, model.depth, t * h * w + extra, d, heads, mlp)
    _dense(p, rng, "output_projection", d, model.num_classes)
    return p


def _factorised_attend(x, p, name, t):
    """Model 4's attention on x (B, t*s, D): heads [0, H/2) over time, [H/2, H) over space."""
    b, n, _ = x.shape
    q, k, v = (np.einsum("bld,dhk->blhk", x, p[f"{name}/{part}/kernel"]) + p[f"{name}/{part}/bias"]
               for part in ("query", "key", "value"))
    q, k, v = (a.reshape(b, t, n // t, *a.shape[2:]) for a in (q, k, v))  # (B, t, s, H, Dh)
    half = q.shape[3] // 2
    outs = []
    for axis, heads in ((1, slice(0, half)), (2, slice(half, None))):
        qa, ka, va = (np.moveaxis(a[..., heads, :], axis, 2) for a in (q, k, v))
        logits = np.einsum("...qhd,...khd->...hqk", qa / np.sqrt(qa.shape[-1]), ka)
        weights = np.exp(logits - logits.max(-1, keepdims=True))
        weights /= weights.sum(-1, keepdims=True)
        outs.append(np.moveaxis(np.einsum("...hqk,...khd->...qhd", weights, va), 2, axis))
    out = np.concatenate(outs, axis=3).reshape(b, n, *q.shape[3:])
    return np.einsum("bqhd,hdo->bqo", out, p[f"{name}/out/kernel"]) + p[f"{name}/out/bias"]


def _fsa_block(x, p, name, t, order):
    """Model 3's block on x (B, t*s, D): attention along each axis of `order`, then the MLP."""
    b, n, d = x.shape
    for axis in order:
        grid = x.reshape(b, t, n // t, d)
        seqs = (np.swapaxes(grid, 1, 2) if axis == "time" else grid).reshape(-1, grid.shape[
            1 if axis == "time" else 2], d)
        y = _ln(seqs, p, f"{name}/LayerNorm_{axis}")
        y = seqs + _attend(y, y, p, f"{name}/MultiHeadDotProductAttention_{axis}")
        if axis == "time":
            y = np.swapaxes(y.reshape(b, n // t, t, d), 1, 2)
        x = y.reshape(b, n, d)
    return x + _mlp(_ln(x, p, f"{name}/LayerNorm_mlp"), p, f"{name}/MlpBlock")


def _encode(x, p, name, model, depth, t):
    """Scenic's Encoder on x (B, L, D) (class token already prepended); then the pooling."""
    x = x + p[f"{name}/posembed_input/pos_embedding"]
    for layer in range(depth):
        block = f"{name}/encoderblock_{layer}"
        if model.variant == "factorised_self_attention":
            x = _fsa_block(x, p, block, t, model.get("attention_order", "space_time").split("_"))
        elif model.variant == "factorised_dot_product":
            y = _ln(x, p, f"{block}/LayerNorm_0")
            x = x + _factorised_attend(y, p, f"{block}/MultiHeadDotProductAttention_0", t)
            x = x + _mlp(_ln(x, p, f"{block}/LayerNorm_1"), p, f"{block}/MlpBlock_0")
        else:
            x = _block_forward(x, p, block)
    x = _ln(x, p, f"{name}/encoder_norm")
    return x[:, 0] if model.pool_type == "token" else x.mean(1)


def _with_cls(x, p, name):
    if name not in p:
        return x
    return np.concatenate([np.broadcast_to(p[name], (x.shape[0], 1, x.shape[-1])), x], axis=1)


def scenic_forward(p, video, model):
    """Logits (B, classes) of Scenic's ViViT with params `p` on `video` (B, T, H, W, C)."""
    b, frames, height, width, c = video.shape
    pt, ph, pw = model.patch_size
    patches = video.reshape(b, frames // pt, pt, height // ph, ph, width // pw, pw, c)
    x = np.einsum("bTtHhWwc,thwcd->bTHWd", patches, p["embedding/kernel"]) + p["embedding/bias"]
    t = x.shape[1]
    if model.variant == "factorised_encoder":
        x = x.reshape(b, t, -1, x.shape[-1])
        x = np.stack([_encode(_with_cls(x[:, i], p, "cls_SpatialTransformer"), p,
                              "SpatialTransformer", model, model.depth, t) for i in range(t)], 1)
        x = _encode(_with_cls(x, p, "cls_TemporalTransformer"), p, "TemporalTransformer", model,
                    model.temporal_depth, t)
    else:
        x = _encode(_with_cls(x.reshape(b, -1, x.shape[-1]), p, "cls"), p, "Transformer", model,
                    model.depth, t)
    return x @ p["output_projection/kernel"] + p["output_projection/bias"]


def _scenic_checkpoint(tmp_path, variant):
    """Returns (config, flat Scenic params, path of the msgpack checkpoint) for `variant`."""
    config = cli.load_config(f"{CONFIG}:{variant}", [])
    model = config.model
    assert (model.variant, model.pool_type) == MODELS[variant]
    grid = (8 // model.patch_size[0], 32 // model.patch_size[1], 32 // model.patch_size[2])
    flat = scenic_params(model, grid)
    path = tmp_path / "checkpoint_100"
    state = {"optimizer": {"target": {"params": pretrained.unflatten(
        {k: v.astype(np.float32) for k, v in flat.items()})}}}
    path.write_bytes(serialization.msgpack_serialize(state))
    return config, flat, str(path)


def _logits(config, params):
    module = registry.MODELS.build(config.model.name, config_lib.kwargs_of(config.model),
                                   "config.model")
    return module.apply({"params": params}, {"video": VIDEO.astype(np.float32)})


@pytest.mark.parametrize("variant", list(MODELS))
def test_scenic_checkpoint_gives_scenic_logits(tmp_path, variant, capsys):
    config, flat, path = _scenic_checkpoint(tmp_path, variant)
    module = registry.MODELS.build(config.model.name, config_lib.kwargs_of(config.model),
                                   "config.model")
    abstract = nn.unbox(jax.eval_shape(lambda: module.init(
        jax.random.key(0), {"video": jnp.zeros(VIDEO.shape)})))["params"]
    params, report = pretrained.load_params(abstract, {
        "path": path, "adapter": "vivit.from_vivit", "options": {"load_head": True}})
    assert report.unused == [] and report.count("init") == 0
    np.testing.assert_allclose(_logits(config, params), scenic_forward(flat, VIDEO, config.model),
                               rtol=2e-4, atol=2e-4)
    # The tool maps the same checkpoint onto the config's model: every parameter, none left.
    convert_checkpoint.main(["--input", path, "--config", f"{CONFIG}:{variant}", "--adapter",
                             "vivit.from_vivit", "--option", "load_head=True", "--output",
                             str(tmp_path / "unused"), "--dry_run"])
    assert " 0 init; 0 checkpoint entries unused" in capsys.readouterr().out


def test_scenic_checkpoint_converted_by_the_tool_gives_scenic_logits(tmp_path):
    config, flat, path = _scenic_checkpoint(tmp_path, "tiny")  # Model 2, as SSv2 / EK use.
    workdir = tmp_path / "converted"
    convert_checkpoint.main(["--input", path, "--config", f"{CONFIG}:tiny", "--adapter",
                             "vivit.from_vivit", "--option", "load_head=True", "--output",
                             str(workdir)])
    params = pretrained.unflatten(pretrained.load_flat_params(str(workdir)))
    np.testing.assert_allclose(_logits(config, params), scenic_forward(flat, VIDEO, config.model),
                               rtol=2e-4, atol=2e-4)
