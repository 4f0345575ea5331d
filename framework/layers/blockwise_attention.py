"""Dot-product attention that never stores its weights, in blocks of heads and queries.

XLA's form of `jax.nn.dot_product_attention` writes out the (B, H, Lq, Lk) logits and
weights, passes over them several times and keeps the weights for the backward pass; at
ViViT model 1's 3137 tokens that is 472 MB per array and layer, and on a CPU the step
spends most of its time moving them. Here the forward pass keeps only the output and each
query's log-sum-exp, and the backward pass recomputes the weights from them (the scheme of
FlashAttention, Dao et al. 2022, with full key rows per block). Short attention (the
weights of all heads within WHOLE_BYTES) is one block; longer attention goes one head and
`block_size` queries at a time. Values and gradients equal the dense form's to float32
rounding.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

# Queries per block of long attention: (512, 3137) float32 weights are 6.4 MB; 256 to 1024
# time alike on CPU.
BLOCK_SIZE = 512
# Float32 weights of all heads up to this size are computed at once (ViT-B/16 at batch 8:
# 15 MB; ViViT-B model 1 at batch 1: 472 MB).
WHOLE_BYTES = 64 * 2**20


def blockwise_dot_product_attention(query: jax.Array, key: jax.Array, value: jax.Array,
                                    block_size: int = BLOCK_SIZE) -> jax.Array:
    """Softmax attention without a mask, bias or dropout, computed block by block.

    Takes query (B, Lq, H, Dh), key and value (B, Lk, H, Dh) (the layout of
    `jax.nn.dot_product_attention`) and returns (B, Lq, H, Dh) in the query's dtype; the
    logits are scaled by Dh ** -0.5 and the softmax is taken in float32.
    """
    if query.ndim != 4 or key.shape != value.shape or query.shape[-1] != key.shape[-1]:
        raise ValueError(
            f"blockwise attention takes query (B, Lq, H, Dh) and key / value (B, Lk, H, Dh); "
            f"got {query.shape}, {key.shape}, {value.shape}.")
    batch, q_len, heads, _ = query.shape
    heads_first = [jnp.moveaxis(x, 2, 0) for x in (query, key, value)]
    if 4 * batch * heads * q_len * key.shape[1] <= WHOLE_BYTES:
        out = jax.vmap(lambda q, k, v: _head_attention(q, k, v, q_len))(*heads_first)
    else:
        out = jax.lax.map(lambda qkv: _head_attention(*qkv, block_size), heads_first)
    return jnp.moveaxis(out, 0, 2)


def _query_blocks(x: jax.Array, block_size: int) -> jax.Array:
    """(B, L, ...) -> (n, B, block_size, ...), zero-padded to whole blocks."""
    n = -(-x.shape[1] // block_size)
    pad = [(0, 0)] * x.ndim
    pad[1] = (0, n * block_size - x.shape[1])
    x = jnp.pad(x, pad)
    return jnp.moveaxis(x.reshape(x.shape[0], n, block_size, *x.shape[2:]), 1, 0)


def _unblock(x: jax.Array, length: int) -> jax.Array:
    """(n, B, block_size, ...) -> (B, length, ...)."""
    x = jnp.moveaxis(x, 0, 1)
    return x.reshape(x.shape[0], -1, *x.shape[3:])[:, :length]


def _logits(q_scaled: jax.Array, k_t: jax.Array) -> jax.Array:
    """q_scaled (B, bq, Dh) (times Dh ** -0.5), k_t (B, Dh, Lk) -> float32 logits (B, bq, Lk).

    Keys come transposed once per head so that no block transposes them again.
    """
    return jnp.einsum("bqd,bdk->bqk", q_scaled, k_t, preferred_element_type=jnp.float32)


def _scan_blocks(body, carry, blocks: list[jax.Array]):
    """`jax.lax.scan(body, carry, blocks)`, or `body` called once when there is one block.

    XLA turns a one-trip loop into a conditional, and on a mesh of CPU devices a collective
    inside a conditional can stall XLA's CPU runtime until it aborts.
    """
    if blocks[0].shape[0] > 1:
        return jax.lax.scan(body, carry, blocks)
    carry, out = body(carry, [b[0] for b in blocks])
    return carry, jax.tree.map(lambda a: a[None], out)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def _head_attention(q, k, v, block_size):
    """One head: q (B, Lq, Dh), k / v (B, Lk, Dh) -> (B, Lq, Dh)."""
    return _head_forward(q, k, v, block_size)[0]


def _head_forward(q, k, v, block_size):
    k_t = jnp.swapaxes(k, 1, 2)

    def block(qb):
        logits = _logits(qb * qb.shape[-1] ** -0.5, k_t)
        peak = logits.max(-1, keepdims=True)
        weights = jnp.exp(logits - peak)
        total = weights.sum(-1, keepdims=True)
        out = jnp.einsum("bqk,bkd->bqd", weights.astype(v.dtype), v,
                         preferred_element_type=jnp.float32) / total
        return out.astype(q.dtype), (peak + jnp.log(total))[..., 0]

    _, (out, lse) = _scan_blocks(lambda _, qb: (None, block(qb[0])), None,
                                 [_query_blocks(q, block_size)])
    out, lse = _unblock(out, q.shape[1]), _unblock(lse, q.shape[1])
    return out, (q, k, v, out, lse)


def _head_backward(block_size, residuals, d_out):
    q, k, v, out, lse = residuals
    scale = q.shape[-1] ** -0.5
    # d(softmax) needs each query's sum over keys of weight * (d_out . v) = d_out . out.
    delta = jnp.sum(d_out.astype(jnp.float32) * out.astype(jnp.float32), -1)
    blocks = [_query_blocks(x, block_size) for x in (q * scale, d_out, lse, delta)]
    k_t, v_t = jnp.swapaxes(k, 1, 2), jnp.swapaxes(v, 1, 2)

    def block(carry, xs):
        dk, dv = carry
        qb, dob, lse_b, delta_b = xs
        weights = jnp.exp(_logits(qb, k_t) - lse_b[..., None])
        dob = dob.astype(jnp.float32)
        dv = dv + jnp.einsum("bqk,bqd->bkd", weights, dob)
        d_weights = jnp.einsum("bqd,bdk->bqk", dob, v_t, preferred_element_type=jnp.float32)
        # Gradient of the unscaled logits; the scale goes on dq and dk (smaller arrays).
        d_logits = weights * (d_weights - delta_b[..., None])
        dq = jnp.einsum("bqk,bkd->bqd", d_logits, k, preferred_element_type=jnp.float32)
        dk = dk + jnp.einsum("bqk,bqd->bkd", d_logits, qb, preferred_element_type=jnp.float32)
        return (dk, dv), dq * scale

    zeros = jnp.zeros(k.shape, jnp.float32)
    (dk, dv), dq = _scan_blocks(block, (zeros, zeros), blocks)
    return (_unblock(dq, q.shape[1]).astype(q.dtype), dk.astype(k.dtype), dv.astype(v.dtype))


_head_attention.defvjp(_head_forward, _head_backward)
