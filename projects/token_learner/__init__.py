"""TokenLearner (Ryoo et al., NeurIPS 2021): registers "token_learner.classifier"."""

from projects.token_learner import model  # noqa: F401  (registers the model)
