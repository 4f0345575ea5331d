"""Zero-shot classifier: prompt averaging, top-k, and the evaluator on a tiny two-tower."""

import numpy as np
import pytest

from framework import config as config_lib
from framework import registry
from framework.registry import ConfigError
from projects.image_text import zero_shot
from tools import cli


def test_class_embeddings_average_prompts_then_normalise():
    prompts = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 0.0]])  # 2 classes x 2
    classes = zero_shot.class_embeddings(prompts, 2, 2)
    np.testing.assert_allclose(classes, [[2**-0.5, 2**-0.5], [1.0, 0.0]], rtol=1e-6)


def test_topk_accuracy():
    scores = np.array([[0.1, 0.9, 0.0], [0.8, 0.1, 0.5], [0.2, 0.3, 0.1]])
    labels = np.array([1, 2, 0])
    assert zero_shot.topk_accuracy(scores, labels, 1) == pytest.approx(1 / 3)
    assert zero_shot.topk_accuracy(scores, labels, 2) == pytest.approx(1.0)


def _evaluator(tmp_path, **keys):
    config = cli.load_config("projects/siglip/configs/synthetic_siglip.py:test",
                                    [f"data.data_dir={tmp_path}"])
    cli.import_project(config)
    model = registry.MODELS.build("image_text.two_tower", config_lib.kwargs_of(config.model),
                                  "config.model")
    from framework import sharding

    mesh = sharding.make_mesh(config.mesh)
    return registry.EVALUATORS.build("image_text.zero_shot", keys, "config.evaluators.zero_shot",
                                     model=model, config=config, mesh=mesh)


def test_evaluator_builds_prompts_from_dataset_class_names(tmp_path):
    evaluator = _evaluator(tmp_path, templates=("a {}.", "the {}"))
    assert evaluator.class_names[0] == "red circle" and len(evaluator.class_names) == 12
    assert evaluator.prompt_tokens.shape == (24, 56)  # 12 classes x 2 templates, 56 tokens.
    with pytest.raises(ConfigError, match="templates"):
        _evaluator(tmp_path, templates=("no placeholder",))
