"""Every shipped config (each variant) loads, validates and names only registered pieces."""

import glob
import os

import pytest

from framework import config as config_lib
from framework import flops, registry
from framework.data import pipeline, preprocess
from tools import cli

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FILES = sorted(glob.glob(os.path.join(ROOT, "projects", "*", "configs", "*.py"))
               + [os.path.join(ROOT, "configs", "synthetic_shapes_vit.py")])


def _specs():
    for path in FILES:
        module = config_lib.load_module(path)
        for variant in getattr(module, "VARIANTS", None) or (None,):
            rel = os.path.relpath(path, ROOT)
            yield rel if variant is None else f"{rel}:{variant}"


SPECS = list(_specs())


def test_every_project_ships_configs():
    projects = {spec.split("/")[1] for spec in SPECS if spec.startswith("projects/")}
    assert projects >= {"vivit", "mtv", "token_learner", "siglip", "lit"}


@pytest.mark.parametrize("spec", SPECS)
def test_config_names_registered_pieces(spec):
    config = cli.load_config(os.path.join(ROOT, spec))
    registry.MODELS.build(config.model.name, config_lib.kwargs_of(config.model), "config.model")
    registry.LOSSES.get(config.loss.name, "config.loss.name")
    registry.TRAIN_STEPS.get(config.train_step.name, "config.train_step.name")
    for key, evaluator in config.evaluators.items():
        registry.EVALUATORS.get(evaluator.get("name") or key, f"config.evaluators.{key}.name")
    for which in ("train", "eval"):
        node = config.data.get(which)
        if node is None or not node.get("name"):
            continue
        registry.DATASETS.get(node.name, f"config.data.{which}.name")
        for key in pipeline.PREPROCESS_KEYS:
            for name, _, _ in preprocess.parse(node.get(key, ""), f"config.data.{which}.{key}"):
                registry.PREPROCESS_OPS.get(name, f"config.data.{which}.{key}")
    if config.init_from.path:
        registry.INIT_ADAPTERS.get(config.init_from.adapter, "config.init_from.adapter")
    for key, value in config.model_input.items():
        flops.parse_input_spec(value, key)
    paper = not any(word in spec for word in ("synthetic", ":tiny", ":test"))
    if paper:
        assert config.model_input, f"{spec}: a paper config sets config.model_input"
        assert config.reference.get("source"), f"{spec}: config.reference.source is empty"
