"""Shared by the model tests: abstract init, cheap numpy-drawn variables, and the loss and
gradients used to compare two forms of one model (remat, scan)."""

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn

KEY = jax.random.key(0)
ALLOWED_AXES = {"embed", "heads", "kv", "mlp", "classes", "layers", None}


def abstract_init(module, *args, **kwargs):
    """Returns the boxed abstract variables of module.init (no computation)."""
    return jax.eval_shape(lambda: module.init(KEY, *args, **kwargs))


def init(module, *args, **kwargs):
    """Returns unboxed variables with module.init's shapes, drawn with numpy (no compiles)."""
    rng = np.random.default_rng(0)
    return jax.tree.map(
        lambda s: jnp.asarray(rng.normal(0.0, 0.3, s.shape), s.dtype),
        nn.unbox(abstract_init(module, *args, **kwargs)),
    )


def sum_of_squares_and_grads(forward, params):
    """Returns (sum(forward(params) ** 2), its gradient w.r.t. params), jitted: a loss that
    reaches every output, for checking that two forms of a model compute the same thing."""
    return jax.jit(jax.value_and_grad(lambda p: jnp.sum(forward(p) ** 2)))(params)
