"""The "mtv.from_scenic" adapter: a checkpoint in Scenic's MTV layout gives this MTV the same
logits.

The reference is a NumPy forward pass of Scenic's MTV written for this test from the
structure of Scenic's `projects/mtv/model.py` (per-frame class tokens, temporal segments, one
frame's position embedding shared by a segment's frames, the cross-view encoder block with
its own layer norms, bottleneck tokens passed from the last view to the first, class tokens
tiled in time before the channel merge); the checkpoint is written as a flax msgpack file, as
Scenic saves them.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen as nn
from flax import serialization

from framework import pretrained
from projects.mtv.model import MTV

# (width, heads, mlp, depth, tubelet (t, h, w)), widest tubelet first as in Scenic's configs.
VIEWS = ((8, 2, 16, 2, (4, 4, 4)), (16, 2, 32, 2, (2, 4, 4)))
GLOBAL = dict(depth=1, mlp_dim=32, num_heads=2)
FUSION_LAYERS = (1,)
BOTTLENECK_TOKENS = 3
CLASSES = 3
VIDEO = np.random.default_rng(0).normal(size=(2, 8, 16, 16, 3))


def _dense(p, rng, name, din, dout):
    p[f"{name}/kernel"] = rng.normal(0, 0.3, (din, dout))
    p[f"{name}/bias"] = rng.normal(0, 0.1, (dout,))


def _layer_norm(p, rng, name, d):
    p[f"{name}/scale"] = 1 + rng.normal(0, 0.1, (d,))
    p[f"{name}/bias"] = rng.normal(0, 0.1, (d,))


def _attention(p, rng, name, d_q, d_kv, heads, width):
    for part, d_in in (("query", d_q), ("key", d_kv), ("value", d_kv)):
        p[f"{name}/{part}/kernel"] = rng.normal(0, 0.3, (d_in, heads, width // heads))
        p[f"{name}/{part}/bias"] = rng.normal(0, 0.1, (heads, width // heads))
    p[f"{name}/out/kernel"] = rng.normal(0, 0.3, (heads, width // heads, d_q))
    p[f"{name}/out/bias"] = rng.normal(0, 0.1, (d_q,))


def _block(p, rng, name, d, heads, mlp):
    _layer_norm(p, rng, f"{name}/LayerNorm_0", d)
    _attention(p, rng, f"{name}/MultiHeadDotProductAttention_0", d, d, heads, d)
    _layer_norm(p, rng, f"{name}/LayerNorm_1", d)
    _dense(p, rng, f"{name}/MlpBlock_0/Dense_0", d, mlp)
    _dense(p, rng, f"{name}/MlpBlock_0/Dense_1", mlp, d)


def scenic_params(fusion, use_query_config):
    """Random params with Scenic MTV's names and shapes (flat, '/'-joined)."""
    rng, p = np.random.default_rng(1), {}
    frames, tokens = VIDEO.shape[1], (VIDEO.shape[2] // 4) * (VIDEO.shape[3] // 4) + 1
    segments = min(frames // v[4][0] for v in VIEWS)
    for i, (d, heads, mlp, depth, (t, h, w)) in enumerate(VIEWS):
        p[f"embedding_view{i}/kernel"] = rng.normal(0, 0.1, (t, h, w, 3, d))
        p[f"embedding_view{i}/bias"] = rng.normal(0, 0.1, (d,))
        p[f"cls_view{i}"] = rng.normal(0, 0.5, (1, frames // t, 1, d))
        p[f"MultiviewEncoder/posembed_input_view{i}/pos_embedding"] = rng.normal(
            0, 0.5, (1, tokens, d))
        for layer in range(depth):
            if fusion == "cross_view_attention" and layer in FUSION_LAYERS:
                cva = f"MultiviewEncoder/cross_view_encoderblock_{layer}"
                _layer_norm(p, rng, f"{cva}/cross_attention_ln_view{i}", d)
                _layer_norm(p, rng, f"{cva}/msa_ln_view{i}", d)
                _attention(p, rng, f"{cva}/msa_view{i}", d, d, heads, d)
                _layer_norm(p, rng, f"{cva}/mlp_ln_view{i}", d)
                _dense(p, rng, f"{cva}/mlp_view{i}/Dense_0", d, mlp)
                _dense(p, rng, f"{cva}/mlp_view{i}/Dense_1", mlp, d)
                if i + 1 < len(VIEWS):
                    other = VIEWS[i + 1]
                    width, n_heads = (d, heads) if use_query_config else other[:2]
                    _attention(p, rng, f"{cva}/cross_attention_view{i}_{i + 1}", d, other[0],
                               n_heads, width)
            else:
                _block(p, rng, f"MultiviewEncoder/encoderblock_{layer}_view{i}", d, heads, mlp)
            if fusion == "bottleneck" and layer in FUSION_LAYERS and i + 1 < len(VIEWS):
                _dense(p, rng, f"MultiviewEncoder/bottleneck_linear_{layer}_view{i}",
                       VIEWS[i + 1][0], d)
    if fusion == "bottleneck":
        p["bottleneck"] = rng.normal(0, 0.5, (1, segments, BOTTLENECK_TOKENS, VIEWS[-1][0]))
    width, longest = sum(v[0] for v in VIEWS), max(frames // v[4][0] for v in VIEWS)
    p["cls_global"] = rng.normal(0, 0.5, (1, 1, width))
    p["global_encoder/posembed_input/pos_embedding"] = rng.normal(0, 0.5, (1, longest + 1, width))
    for layer in range(GLOBAL["depth"]):
        _block(p, rng, f"global_encoder/encoderblock_{layer}", width, GLOBAL["num_heads"],
               GLOBAL["mlp_dim"])
    _layer_norm(p, rng, "global_encoder/encoder_norm", width)
    _dense(p, rng, "output_projection", width, CLASSES)
    return p


def _ln(x, p, name):
    mean, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + 1e-6) * p[f"{name}/scale"] + p[f"{name}/bias"]


def _attend(x_q, x_kv, p, name):
    q, k, v = (np.einsum("bld,dhk->blhk", x, p[f"{name}/{part}/kernel"]) + p[f"{name}/{part}/bias"]
               for x, part in ((x_q, "query"), (x_kv, "key"), (x_kv, "value")))
    logits = np.einsum("bqhd,bkhd->bhqk", q / math.sqrt(q.shape[-1]), k)
    weights = np.exp(logits - logits.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    out = np.einsum("bhqk,bkhd->bqhd", weights, v)
    return np.einsum("bqhd,hdo->bqo", out, p[f"{name}/out/kernel"]) + p[f"{name}/out/bias"]


def _mlp(x, p, name):
    h = x @ p[f"{name}/Dense_0/kernel"] + p[f"{name}/Dense_0/bias"]
    h = 0.5 * h * (1 + np.tanh(math.sqrt(2 / math.pi) * (h + 0.044715 * h ** 3)))
    return h @ p[f"{name}/Dense_1/kernel"] + p[f"{name}/Dense_1/bias"]


def _block_forward(x, p, name):
    y = _ln(x, p, f"{name}/LayerNorm_0")
    x = x + _attend(y, y, p, f"{name}/MultiHeadDotProductAttention_0")
    return x + _mlp(_ln(x, p, f"{name}/LayerNorm_1"), p, f"{name}/MlpBlock_0")


def _segment_forward(xs, p, fusion, bottleneck):
    """Scenic's MultiviewEncoder on one segment: xs[i] (B, L_i, D_i); returns the same."""
    # One frame's position embedding (1, n, D_i), added to each of the segment's frames.
    posembs = [p[f"MultiviewEncoder/posembed_input_view{i}/pos_embedding"] for i in range(len(xs))]
    xs = [(x.reshape(x.shape[0], -1, *pos.shape[1:]) + pos[:, None]).reshape(x.shape)
          for x, pos in zip(xs, posembs)]
    for layer in range(max(v[3] for v in VIEWS)):
        fuse = layer in FUSION_LAYERS
        if fusion == "cross_view_attention" and fuse:
            cva = f"MultiviewEncoder/cross_view_encoderblock_{layer}"
            normed = [_ln(x, p, f"{cva}/cross_attention_ln_view{i}") for i, x in enumerate(xs)]
            for kv in range(len(xs) - 1, 0, -1):
                xs[kv - 1] = xs[kv - 1] + _attend(normed[kv - 1], normed[kv], p,
                                                  f"{cva}/cross_attention_view{kv - 1}_{kv}")
            for i in range(len(xs)):
                y = _ln(xs[i], p, f"{cva}/msa_ln_view{i}")
                xs[i] = xs[i] + _attend(y, y, p, f"{cva}/msa_view{i}")
            for i in range(len(xs)):
                y = _ln(xs[i], p, f"{cva}/mlp_ln_view{i}")
                xs[i] = xs[i] + _mlp(y, p, f"{cva}/mlp_view{i}")
            continue
        for i in reversed(range(len(xs))):
            name = f"MultiviewEncoder/encoderblock_{layer}_view{i}"
            if fusion == "bottleneck" and fuse:
                if bottleneck.shape[-1] != xs[i].shape[-1]:
                    linear = f"MultiviewEncoder/bottleneck_linear_{layer}_view{i}"
                    bottleneck = bottleneck @ p[f"{linear}/kernel"] + p[f"{linear}/bias"]
                joint = _block_forward(np.concatenate([xs[i], bottleneck], axis=1), p, name)
                xs[i], bottleneck = joint[:, :-BOTTLENECK_TOKENS], joint[:, -BOTTLENECK_TOKENS:]
            else:
                xs[i] = _block_forward(xs[i], p, name)
    return xs


def scenic_forward(p, video, fusion):
    """Logits (B, CLASSES) of Scenic's MTV with params `p` on `video` (B, T, H, W, C)."""
    batch, frames = video.shape[:2]
    tokens = []
    for i, (_, _, _, _, (t, h, w)) in enumerate(VIEWS):
        patches = video.reshape(batch, frames // t, t, video.shape[2] // h, h,
                                video.shape[3] // w, w, 3)
        x = np.einsum("bTtHhWwc,thwcd->bTHWd", patches, p[f"embedding_view{i}/kernel"])
        x = (x + p[f"embedding_view{i}/bias"]).reshape(batch, frames // t, -1, x.shape[-1])
        cls = np.broadcast_to(p[f"cls_view{i}"], (batch, *p[f"cls_view{i}"].shape[1:]))
        tokens.append(np.concatenate([cls, x], axis=2))
    segments = min(x.shape[1] for x in tokens)
    aligned = [x.reshape(batch, segments, -1, x.shape[-1]) for x in tokens]
    outputs = [[] for _ in VIEWS]
    for s in range(segments):
        bottleneck = (np.broadcast_to(p["bottleneck"][:, s], (batch, *p["bottleneck"].shape[2:]))
                      if fusion == "bottleneck" else None)
        for i, x in enumerate(_segment_forward([x[:, s] for x in aligned], p, fusion, bottleneck)):
            outputs[i].append(x)
    longest = max(x.shape[1] for x in tokens)
    merged = []
    for out, x in zip(outputs, tokens):
        per_frame = np.stack(out, axis=1).reshape(x.shape)[:, :, 0]  # (B, t_i, D_i)
        merged.append(np.tile(per_frame, (1, longest // x.shape[1], 1)))
    x = np.concatenate(merged, axis=-1)
    cls = np.broadcast_to(p["cls_global"], (batch, 1, x.shape[-1]))
    x = np.concatenate([cls, x], axis=1) + p["global_encoder/posembed_input/pos_embedding"]
    for layer in range(GLOBAL["depth"]):
        x = _block_forward(x, p, f"global_encoder/encoderblock_{layer}")
    x = _ln(x, p, "global_encoder/encoder_norm")[:, 0]
    return x @ p["output_projection/kernel"] + p["output_projection/bias"]


def tessera_mtv(fusion, use_query_config, view_tiling="tile"):
    views = tuple(dict(hidden_size=d, num_heads=h, mlp_dim=m, depth=n, tubelet=t)
                  for d, h, m, n, t in VIEWS)
    return MTV(num_classes=CLASSES, views=views, fusion=fusion, fusion_layers=FUSION_LAYERS,
               bottleneck_tokens=BOTTLENECK_TOKENS, use_query_config=use_query_config,
               global_encoder=dict(GLOBAL, view_tiling=view_tiling))


@pytest.mark.parametrize("fusion,use_query_config", [
    ("cross_view_attention", True), ("cross_view_attention", False), ("bottleneck", True)])
def test_scenic_checkpoint_gives_scenic_logits(tmp_path, fusion, use_query_config):
    flat = scenic_params(fusion, use_query_config)
    path = tmp_path / "checkpoint_100"
    state = {"params": pretrained.unflatten({k: v.astype(np.float32) for k, v in flat.items()})}
    path.write_bytes(serialization.msgpack_serialize(state))
    model = tessera_mtv(fusion, use_query_config)
    batch = {"video": jnp.asarray(VIDEO, jnp.float32)}
    abstract = nn.unbox(jax.eval_shape(lambda: model.init(jax.random.key(0), batch)))["params"]
    params, report = pretrained.load_params(abstract,
                                            {"path": str(path), "adapter": "mtv.from_scenic"})
    assert report.unused == []
    assert not [row for row in report.rows if row[1].startswith("init")]
    logits = model.apply({"params": params}, batch)
    np.testing.assert_allclose(logits, scenic_forward(flat, VIDEO, fusion), rtol=2e-4, atol=2e-4)
    # Our default merge (frames aligned in time) is another function of the same params.
    repeat = tessera_mtv(fusion, use_query_config, view_tiling="repeat")
    assert np.abs(repeat.apply({"params": params}, batch) - logits).max() > 1e-3


def test_scenic_checkpoint_with_other_widths_names_the_key(tmp_path):
    flat = scenic_params("cross_view_attention", use_query_config=False)
    model = tessera_mtv("cross_view_attention", use_query_config=True)
    batch = {"video": jnp.zeros(VIDEO.shape, jnp.float32)}
    abstract = nn.unbox(jax.eval_shape(lambda: model.init(jax.random.key(0), batch)))["params"]
    with pytest.raises(pretrained.IncompatibleCheckpointError,
                       match="cross_attention_view0_1/.*use_query_config"):
        pretrained.load_params(abstract, {"path": "", "adapter": "mtv.from_scenic"}, source=flat)
