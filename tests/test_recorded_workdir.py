"""A workdir recorded before the registry names were namespaced by project (written by the
code of that time, tests/data/vivit_workdir_v0) still evaluates and resumes; a recorded
config's former names are read as the new ones, with one warning line."""

import json
import logging
import os
import shutil

import ml_collections
import pytest

from framework import config as config_lib
from framework import registry, trainer
from framework.registry import ConfigError
from tools import cli
from tools import eval as eval_tool

RECORDED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "vivit_workdir_v0")


@pytest.fixture()
def workdir(tmp_path, monkeypatch):
    """A copy of the recorded workdir (the original is never written), data under tmp."""
    monkeypatch.setenv("TESSERA_DATA_DIR", str(tmp_path / "data"))
    shutil.copytree(RECORDED, tmp_path / "run")
    return tmp_path / "run"


def _rows(workdir):
    with open(workdir / "metrics.jsonl") as f:
        return [json.loads(line) for line in f]


def test_recorded_workdir_evaluates_and_resumes(workdir, caplog):
    with open(workdir / "config.json") as f:
        assert json.load(f)["model"]["name"] == "vivit_classification"  # The former name.
    recorded_eval = [r for r in _rows(workdir) if "eval/classification/top1" in r][-1]

    with caplog.at_level(logging.WARNING):
        step, metrics = eval_tool.evaluate(str(workdir))
    assert "vivit_classification -> vivit.classifier" in caplog.text
    assert step == 2
    for key in ("eval/classification/top1", "eval/classification/loss"):
        assert metrics[key] == pytest.approx(recorded_eval[key], rel=1e-5)

    config = eval_tool.run_config(str(workdir), ["total_steps=4", "checkpoint_every=4"])
    assert config.model.name == "vivit.classifier"
    result = trainer.train_and_evaluate(config, str(workdir))
    assert int(result.state.step) == 4
    steps = [r["step"] for r in _rows(workdir) if "train/loss" in r]
    assert steps == [1, 2, 3, 4]  # Resumed at step 2 from the recorded checkpoint.
    assert (workdir / "config.1.json").exists()  # The recorded config is kept as it was.


def test_upgrade_names_renames_every_kind():
    cli.import_project(ml_collections.ConfigDict({"project": "vivit"}))
    config = cli.load_config("configs/synthetic_shapes_vit.py:test")
    config.model.name = "vivit_classification"
    config.loss = ml_collections.ConfigDict({"name": "epic_kitchens_xent"})
    config.evaluators = ml_collections.ConfigDict({"epic_kitchens_multiview": {"data": "eval"}})
    config.data.train.preprocess = "verb_noun_targets(3, 4)|keep('image')"
    config.init_from.adapter = "vivit"
    renamed = config_lib.upgrade_names(config)
    assert len(renamed) == 5
    assert (config.model.name, config.loss.name, config.init_from.adapter) == (
        "vivit.classifier", "vivit.epic_kitchens_xent", "vivit.from_vit")
    assert config.evaluators.epic_kitchens_multiview.name == "vivit.epic_kitchens_multiview"
    assert config.data.train.preprocess == "vivit.verb_noun_targets(3, 4)|keep('image')"
    assert config_lib.upgrade_names(config) == []  # Current names stay as they are.
    with pytest.raises(ConfigError, match="now named 'vivit.classifier'"):
        registry.MODELS.get("vivit_classification", "config.model.name")
