"""Contrastive losses: formulas, the chunked ring sigmoid loss == dense (value and
gradients) on 8x1 and 4x2 meshes, and its per-device memory that does not grow with the
global batch."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from framework import registry, sharding
from projects.image_text import contrastive_losses as cl


def _embeddings(batch, width, seed=0):
    rng = np.random.default_rng(seed)
    zimg, ztxt = rng.normal(size=(2, batch, width))
    ztxt[: batch // 2] += 2 * zimg[: batch // 2]  # Some pairs agree, some do not.
    norm = lambda x: (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)  # noqa
    return norm(zimg), norm(ztxt)


def _log_sigmoid(x):
    return -np.logaddexp(0.0, -x)


def test_sigmoid_dense_is_the_papers_loss():
    zimg, ztxt = _embeddings(6, 4)
    t, b = 10.0, -10.0
    logits = t * zimg.astype(np.float64) @ ztxt.T.astype(np.float64) + b
    labels = 2 * np.eye(6) - 1
    paper = -np.sum(_log_sigmoid(labels * logits)) / 6  # -1/|B| sum_i sum_j log sigma
    per_example = cl.sigmoid_loss_dense(zimg, ztxt, jnp.float32(t), jnp.float32(b))
    assert per_example.shape == (6,)
    np.testing.assert_allclose(np.mean(per_example), paper, rtol=1e-5)


def test_softmax_contrastive_is_clips_symmetric_loss():
    zimg, ztxt = _embeddings(5, 3)
    logits = 7.0 * zimg.astype(np.float64) @ ztxt.T.astype(np.float64)
    log_rows = logits - np.log(np.sum(np.exp(logits), axis=1, keepdims=True))
    log_cols = logits - np.log(np.sum(np.exp(logits), axis=0, keepdims=True))
    clip = -(np.mean(np.diag(log_rows)) + np.mean(np.diag(log_cols))) / 2
    loss = cl.softmax_contrastive_loss(zimg, ztxt, jnp.float32(7.0))
    np.testing.assert_allclose(np.mean(loss), clip, rtol=1e-5)


@pytest.mark.parametrize("mesh_shape", [dict(data=8, fsdp=1), dict(data=4, fsdp=2)])
def test_chunked_equals_dense_value_and_gradients(mesh_shape):
    mesh = sharding.make_mesh({**mesh_shape, "tensor": 1})
    zimg, ztxt = _embeddings(32, 16)
    weights = jnp.asarray(np.random.default_rng(1).uniform(size=32), jnp.float32)
    t, b = jnp.float32(10.0), jnp.float32(-10.0)

    def objective(loss_fn):
        return lambda zi, zt, t, b: jnp.mean(loss_fn(zi, zt, t, b) * weights)

    with jax.set_mesh(mesh):
        batch = NamedSharding(mesh, P(sharding.BATCH_AXES))
        zimg, ztxt = jax.device_put(zimg, batch), jax.device_put(ztxt, batch)
        grad = lambda f: jax.jit(jax.value_and_grad(objective(f), argnums=(0, 1, 2, 3)))  # noqa
        dense_value, dense_grads = grad(cl.sigmoid_loss_dense)(zimg, ztxt, t, b)
        ring_value, ring_grads = grad(cl.sigmoid_loss_chunked)(zimg, ztxt, t, b)
    np.testing.assert_allclose(ring_value, dense_value, atol=1e-6, rtol=1e-6)
    for ring, dense in zip(ring_grads, dense_grads):
        np.testing.assert_allclose(ring, dense, atol=1e-6, rtol=1e-6)
    assert float(jnp.max(jnp.abs(dense_grads[2]))) > 0  # The gradients are not trivially 0.


def _step_temp_bytes(loss_fn, devices, local_batch=512, width=16):
    mesh = sharding.make_mesh({"data": devices, "fsdp": 1, "tensor": 1},
                              devices=jax.devices()[:devices])
    z = jax.ShapeDtypeStruct((local_batch * devices, width), jnp.float32,
                             sharding=NamedSharding(mesh, P(sharding.BATCH_AXES)))
    s = jax.ShapeDtypeStruct((), jnp.float32)
    step = jax.value_and_grad(lambda a, b, t, bias: jnp.mean(loss_fn(a, b, t, bias)),
                              argnums=(0, 1, 2, 3))
    with jax.set_mesh(mesh):
        compiled = jax.jit(step).lower(z, z, s, s).compile()
    return compiled.memory_analysis().temp_size_in_bytes


def test_chunked_memory_grows_with_local_not_global_batch():
    local = 512
    ring = {n: _step_temp_bytes(cl.sigmoid_loss_chunked, n, local) for n in (2, 8)}
    dense = {n: _step_temp_bytes(cl.sigmoid_loss_dense, n, local) for n in (2, 8)}
    # Same local batch, 4x the global batch: the ring's per-device temporaries stay put...
    assert ring[8] <= 1.1 * ring[2], ring
    # ... and hold a few (local, local) logit blocks, far below one (local, global) block;
    assert ring[8] < local * local * 8 * 4, ring
    # while the dense form's grow with the global batch.
    assert dense[8] >= 3 * dense[2], dense


def test_registered_losses_read_two_tower_outputs():
    zimg, ztxt = _embeddings(8, 4)
    outputs = {"zimg": zimg, "ztxt": ztxt, "t": jnp.float32(10.0), "b": jnp.float32(-10.0)}
    sigmoid = registry.LOSSES.build("image_text.sigmoid_pairwise", {"chunked": False},
                                    "config.loss")
    softmax = registry.LOSSES.build("image_text.softmax_contrastive", {}, "config.loss")
    loss, metrics = sigmoid(outputs, {})
    np.testing.assert_allclose(loss, jnp.mean(cl.sigmoid_loss_dense(zimg, ztxt, 10.0, -10.0)),
                               rtol=1e-6)
    assert set(metrics) == {"temperature", "bias"} and float(metrics["bias"]) == -10.0
    # Padding pairs (mask 0) are left out of the mean.
    mask = jnp.array([1, 1, 1, 1, 1, 1, 0, 0])
    np.testing.assert_allclose(
        softmax(outputs, {"mask": mask})[0],
        jnp.mean(cl.softmax_contrastive_loss(zimg, ztxt, 10.0)[:6]), rtol=1e-6)
    # Without a mesh the chunked form is the dense one.
    chunked = registry.LOSSES.build("image_text.sigmoid_pairwise", {}, "config.loss")
    np.testing.assert_allclose(chunked(outputs, {})[0], loss, rtol=1e-6)
    with pytest.raises(ValueError, match="bias_init"):
        sigmoid({k: v for k, v in outputs.items() if k != "b"}, {})
    with pytest.raises(ValueError, match="image_text.two_tower"):
        softmax(zimg, {})


def test_chunked_rejects_a_batch_that_does_not_divide():
    mesh = sharding.make_mesh({"data": 8, "fsdp": 1, "tensor": 1})
    zimg, ztxt = _embeddings(12, 4)
    with pytest.raises(ValueError, match="multiple of 8"):
        cl.sigmoid_loss_chunked(zimg, ztxt, 1.0, 0.0, mesh=mesh)
