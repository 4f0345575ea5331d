"""Classifier head of the ViT family: optional `pre_logits` (Dense + tanh), then `head`."""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp


def classifier_head(x: jax.Array, out: dict, *, num_classes: int | None,
                    representation_size: int | None = None, head_zeroinit: bool = True,
                    head_bias_init: float = 0.0, dtype: Any = jnp.float32,
                    param_dtype: Any = jnp.float32) -> jax.Array:
    """Applies the head to pooled features x (B, D) (or tokens (B, L, D)).

    Call it from a module's compact method: it creates the Dense submodules `pre_logits`
    (when `representation_size`; logical axes embed -> mlp, lecun-normal init) and `head`
    (when `num_classes`; float32, zero kernel init when `head_zeroinit`, every bias set to
    `head_bias_init`) in that module, as big_vision names them. Sets out["pre_logits"] and
    out["logits"] (with a head). Returns the logits (..., num_classes) float32, or the
    pre-logits without a head.
    """
    if representation_size:
        x = nn.Dense(
            representation_size,
            dtype=dtype,
            param_dtype=param_dtype,
            kernel_init=nn.with_logical_partitioning(
                nn.initializers.lecun_normal(), ("embed", "mlp")),
            bias_init=nn.with_logical_partitioning(nn.initializers.zeros, ("mlp",)),
            name="pre_logits",
        )(x)
        x = nn.tanh(x)
    out["pre_logits"] = x
    if not num_classes:
        return x
    # The head runs in float32: it is cheap and the logits feed the loss.
    kernel_init = nn.initializers.zeros if head_zeroinit else nn.initializers.lecun_normal()
    x = out["logits"] = nn.Dense(
        num_classes,
        dtype=jnp.float32,
        param_dtype=param_dtype,
        kernel_init=nn.with_logical_partitioning(kernel_init, ("embed", "classes")),
        bias_init=nn.with_logical_partitioning(nn.initializers.constant(head_bias_init),
                                               ("classes",)),
        name="head",
    )(x.astype(jnp.float32))
    return x
