"""TokenLearner (Ryoo et al., NeurIPS 2021): registers "token_learner.classifier" and the
train step "token_learner.mean_teacher" (self-distillation from the EMA params)."""

from projects.token_learner import distill, model  # noqa: F401  (register the model, step)
