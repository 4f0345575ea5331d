"""Image-text contrastive losses: softmax (CLIP / LiT) and sigmoid (SigLIP), dense and chunked.

The losses read the two-tower model's outputs {"zimg": (B, E), "ztxt": (B, E) (both
L2-normalised), "t": () temperature, "b": () bias} and return (loss, metrics): the mean
over the pairs of the global batch (`losses.masked_mean`: padding pairs left out) of a
per-pair loss (B,), which is the paper's loss, and the temperature (and bias) as metrics:

- softmax: entry i is (CE(image i -> all texts, target i) + CE(text i -> all images, target
  i)) / 2, so the mean is CLIP's symmetric loss.
- sigmoid: entry i is -sum_j log sigmoid(z_ij (t <x_i, y_j> + b)) over every text j of the
  global batch (z_ij = 1 on the diagonal, -1 elsewhere), so the mean is SigLIP's
  -1/|B| sum_i sum_j log sigmoid(...).

The chunked sigmoid form computes the same numbers without any device holding the global
batch of embeddings or the (B, B) logits: under `jax.shard_map` over the mesh's batch axes
("data", "fsdp") each device scores its local images against its local texts, then passes
its texts to the next device with `jax.lax.ppermute` until every pair has been scored (n - 1
hops on n devices). Its backward pass (a custom VJP) runs the same ring again, carrying each
text chunk together with the gradient accumulated for it, so after n hops every chunk and
its full gradient are back on their owner. Per-device memory for logits is (B/n, B/n).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
from jax.sharding import PartitionSpec as P

from framework import losses, registry
from framework.sharding import BATCH_AXES

LossFn = Callable[[dict, dict], tuple[jax.Array, dict]]


def pair_logits(zimg: jax.Array, ztxt: jax.Array, t: jax.Array,
                b: jax.Array | float = 0.0) -> jax.Array:
    """Returns float32 logits (Bi, Bt) = t * zimg @ ztxt.T + b from (Bi, E) and (Bt, E)."""
    sims = jnp.einsum("ie,je->ij", zimg.astype(jnp.float32), ztxt.astype(jnp.float32))
    return sims * t + b


def softmax_contrastive_loss(zimg: jax.Array, ztxt: jax.Array, t: jax.Array) -> jax.Array:
    """Symmetric softmax contrastive loss per pair (B,); pair i is image i with text i."""
    logits = pair_logits(zimg, ztxt, t)
    diag = jnp.diagonal(logits)
    image_to_text = jax.nn.logsumexp(logits, axis=1) - diag
    text_to_image = jax.nn.logsumexp(logits, axis=0) - diag
    return 0.5 * (image_to_text + text_to_image)


def _pair_signs(rows: int, cols: int, positives_on_diagonal: bool | jax.Array) -> jax.Array:
    """Returns (rows, cols) float32: +1 on the diagonal when positives_on_diagonal, else -1."""
    eye = jnp.eye(rows, cols, dtype=jnp.float32)
    return jnp.where(jnp.asarray(positives_on_diagonal) & (eye > 0), 1.0, -1.0)


def sigmoid_terms(zimg: jax.Array, ztxt: jax.Array, t: jax.Array, b: jax.Array,
                  positives_on_diagonal: bool | jax.Array) -> jax.Array:
    """Returns (Bi,): -sum over texts of log sigmoid(sign * logit) for each image row."""
    logits = pair_logits(zimg, ztxt, t, b)
    signs = _pair_signs(*logits.shape, positives_on_diagonal)
    return -jnp.sum(jax.nn.log_sigmoid(signs * logits), axis=1)


def sigmoid_loss_dense(zimg: jax.Array, ztxt: jax.Array, t: jax.Array,
                       b: jax.Array) -> jax.Array:
    """SigLIP loss per image (B,) over the global (B, B) logits; image i pairs with text i."""
    return sigmoid_terms(zimg, ztxt, t, b, True)


def _ring_axes(mesh, axes: Sequence[str]) -> tuple[tuple[str, ...], int]:
    """Returns (the batch axes present in `mesh`, the number of shards they make)."""
    names = tuple(a for a in axes if a in mesh.axis_names)
    return names, math.prod(mesh.shape[a] for a in names)


def sigmoid_loss_chunked(zimg: jax.Array, ztxt: jax.Array, t: jax.Array, b: jax.Array,
                         mesh=None, axes: Sequence[str] = BATCH_AXES) -> jax.Array:
    """SigLIP loss per image (B,), equal to `sigmoid_loss_dense`, computed in a device ring.

    Takes zimg, ztxt (B, E) sharded (or shardable) over `axes` of `mesh` (default: the mesh
    set with `jax.set_mesh`), scalars t and b. Each device only ever holds its local B/n
    images, one B/n chunk of texts at a time, and (B/n, B/n) logits. Without a mesh, or
    with a single batch shard, this is the dense form. Raises ValueError when B does not
    divide over the batch shards.
    """
    mesh = mesh if mesh is not None else jax.sharding.get_abstract_mesh()
    if mesh is None or mesh.empty:
        return sigmoid_loss_dense(zimg, ztxt, t, b)
    axes, shards = _ring_axes(mesh, axes)
    if shards == 1:
        return sigmoid_loss_dense(zimg, ztxt, t, b)
    if zimg.shape[0] % shards:
        raise ValueError(f"chunked sigmoid loss: batch {zimg.shape[0]} does not divide over "
                         f"the {shards} batch shards of mesh axes {axes}; use a batch size "
                         f"that is a multiple of {shards}.")
    t = jnp.asarray(t, jnp.float32).reshape(())
    b = jnp.asarray(b, jnp.float32).reshape(())
    return _ring_loss(mesh, axes, shards)(zimg.astype(jnp.float32),
                                          ztxt.astype(jnp.float32), t, b)


@functools.lru_cache(maxsize=64)
def _ring_loss(mesh, axes: tuple[str, ...], shards: int):
    """Builds the custom-VJP ring loss f(zimg, ztxt, t, b) -> (B,) for one mesh and axes."""
    batch = P(axes)
    forward_perm = [(i, (i + 1) % shards) for i in range(shards)]

    def hop(x):
        return jax.lax.ppermute(x, axes, forward_perm)

    def local_forward(zi, zt, t, b):
        loss = sigmoid_terms(zi, zt, t, b, True)

        def step(_, carry):
            chunk, total = carry
            chunk = hop(chunk)
            return chunk, total + sigmoid_terms(zi, chunk, t, b, False)

        _, loss = jax.lax.fori_loop(1, shards, step, (zt, loss))
        return loss

    def local_backward(zi, zt, t, b, g):
        def step(k, carry):
            chunk, chunk_grad, dzi, dt, db = carry
            sims = jnp.einsum("ie,je->ij", zi, chunk)
            signs = _pair_signs(*sims.shape, k == 0)
            # d/dlogit of -log sigmoid(s * logit) is -s * sigmoid(-s * logit).
            dlogits = g[:, None] * (-signs) * jax.nn.sigmoid(-signs * (sims * t + b))
            dzi = dzi + t * dlogits @ chunk
            chunk_grad = chunk_grad + t * dlogits.T @ zi
            dt = dt + jnp.sum(dlogits * sims)
            db = db + jnp.sum(dlogits)
            # Every chunk travels on with its gradient; after `shards` hops both are home.
            return hop(chunk), hop(chunk_grad), dzi, dt, db

        zero = jax.lax.pcast(jnp.zeros((), jnp.float32), axes, to="varying")
        init = (zt, jnp.zeros_like(zt), jnp.zeros_like(zi), zero, zero)
        _, dzt, dzi, dt, db = jax.lax.fori_loop(0, shards, step, init)
        return dzi, dzt, jax.lax.psum(dt, axes), jax.lax.psum(db, axes)

    forward = jax.shard_map(local_forward, mesh=mesh, in_specs=(batch, batch, P(), P()),
                            out_specs=batch)
    backward = jax.shard_map(local_backward, mesh=mesh,
                             in_specs=(batch, batch, P(), P(), batch),
                             out_specs=(batch, batch, P(), P()))

    @jax.custom_vjp
    def ring_loss(zimg, ztxt, t, b):
        return forward(zimg, ztxt, t, b)

    def fwd(zimg, ztxt, t, b):
        return forward(zimg, ztxt, t, b), (zimg, ztxt, t, b)

    def bwd(residuals, g):
        return backward(*residuals, g)

    ring_loss.defvjp(fwd, bwd)
    return ring_loss


def _outputs(outputs: dict, need_bias: bool) -> tuple:
    if not isinstance(outputs, dict) or "zimg" not in outputs or "ztxt" not in outputs:
        raise ValueError("contrastive loss: the model must return a dict with 'zimg' and "
                         "'ztxt' embeddings (config.model.name='image_text.two_tower').")
    if need_bias and "b" not in outputs:
        raise ValueError("image_text.sigmoid_pairwise loss: the model has no bias 'b'; set "
                         "config.model.bias_init (SigLIP: -10.0).")
    return outputs["zimg"], outputs["ztxt"], outputs["t"], outputs.get("b")


@registry.LOSSES.register("image_text.softmax_contrastive", formerly=("softmax_contrastive",))
def softmax_contrastive() -> LossFn:
    """CLIP / LiT symmetric softmax contrastive loss over the global batch; metric
    `temperature`."""

    def loss(outputs: dict, batch: dict) -> tuple[jax.Array, dict]:
        zimg, ztxt, t, _ = _outputs(outputs, need_bias=False)
        per_pair = softmax_contrastive_loss(zimg, ztxt, t)
        return losses.masked_mean(per_pair, batch), {"temperature": t}

    return loss


@registry.LOSSES.register("image_text.sigmoid_pairwise", formerly=("sigmoid_pairwise",))
def sigmoid_pairwise(chunked: bool = True) -> LossFn:
    """SigLIP pairwise sigmoid loss (see the module docstring); metrics `temperature`, `bias`.

    `chunked`: compute it in the device ring (`sigmoid_loss_chunked`, the paper's efficient
    form; the same value and gradients) instead of over the global (B, B) logits.
    """

    def loss(outputs: dict, batch: dict) -> tuple[jax.Array, dict]:
        zimg, ztxt, t, b = _outputs(outputs, need_bias=True)
        fn = sigmoid_loss_chunked if chunked else sigmoid_loss_dense
        return losses.masked_mean(fn(zimg, ztxt, t, b), batch), {"temperature": t, "bias": b}

    return loss
