"""Train step "token_learner.mean_teacher": self-distillation from the EMA of the params.

The teacher is the run's own exponential moving average of the params (`config.ema.decay`),
as in Mean Teacher (Tarvainen & Valpola, NeurIPS 2017): the student minimises its loss plus
`weight` * T^2 * KL(softmax(teacher / T) || softmax(student / T)) at temperature T, the
teacher's logits taken in eval mode and without gradient. The step is the shared one
(framework.step: accumulation, non-finite guard, update, EMA); only the objective differs.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from framework import registry, step
from framework.config import ConfigError
from framework.losses import logits_of, masked_mean


def distill_kl(teacher_logits: jax.Array, student_logits: jax.Array,
               temperature: float) -> jax.Array:
    """Returns per-example T^2 * KL(softmax(teacher / T) || softmax(student / T)) (B,) of
    logits (B, C)."""
    t = jax.nn.log_softmax(teacher_logits.astype(jnp.float32) / temperature, axis=-1)
    s = jax.nn.log_softmax(student_logits.astype(jnp.float32) / temperature, axis=-1)
    return temperature**2 * jnp.sum(jnp.exp(t) * (t - s), axis=-1)


@registry.TRAIN_STEPS.register("token_learner.mean_teacher")
def mean_teacher_step(parts: step.StepParts, weight: float = 1.0,
                      temperature: float = 1.0) -> step.StepFn:
    """Returns the shared train step whose objective adds `weight` times the distillation
    term from the EMA teacher (module docstring) to the model's loss. Extra metrics:
    `supervised_loss` (the model's loss) and `distill_kl`. Needs config.ema.decay > 0."""
    if not parts.ema_decay:
        raise ConfigError("config.train_step.name='token_learner.mean_teacher' distils from "
                          "the EMA of the params; set config.ema.decay (e.g. 0.99).")

    def objective(params, collections, batch, rng, state):
        student, new_collections = step.apply_model(parts.model, params, collections, batch,
                                                    rng)
        loss, metrics = step.add_aux_losses(*parts.loss_fn(student, batch), student)
        teacher, _ = step.apply_model(parts.model, jax.lax.stop_gradient(state.ema_params),
                                      collections, batch, None, train=False)
        kl = masked_mean(distill_kl(logits_of(teacher), logits_of(student), temperature), batch)
        metrics = {**metrics, "supervised_loss": loss, "distill_kl": kl}
        return loss + weight * kl, (metrics, new_collections)

    return step.make_train_step(parts, objective)
