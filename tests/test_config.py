"""Config loading, overrides and validation."""

import textwrap

import pytest

from framework import config as config_lib
from framework.registry import ConfigError
from tools import cli

DEMO = "configs/synthetic_shapes_vit.py"


def test_load_default_and_variant():
    default = config_lib.load_config(DEMO)
    small = config_lib.load_config(DEMO + ":test")
    assert default.model.name == "vit_classification"
    assert small.total_steps < default.total_steps


def test_override_keeps_types():
    c = config_lib.load_config(DEMO, ["optimizer.lr=0.1", "total_steps=7",
                                      "model.patch_size=(2, 2)", "checkpoint.async_save=false",
                                      "optimizer.lr=3"])
    assert c.optimizer.lr == 3.0 and isinstance(c.optimizer.lr, float)
    assert c.total_steps == 7
    assert c.model.patch_size == (2, 2)
    assert c.checkpoint.async_save is False


def test_unknown_override_key_names_it():
    with pytest.raises(ConfigError, match=r"config.optimizer.learning_rate: unknown key"):
        config_lib.load_config(DEMO, ["optimizer.learning_rate=0.1"])


def test_wrong_type_override_names_key():
    with pytest.raises(ConfigError, match=r"config.total_steps='ten'"):
        config_lib.load_config(DEMO, ["total_steps=ten"])


def test_unknown_variant():
    with pytest.raises(ConfigError, match="unknown variant 'huge'"):
        config_lib.load_config(DEMO + ":huge")


def test_missing_file():
    with pytest.raises(ConfigError, match="no config file"):
        config_lib.load_config("configs/nope.py")


def _write(tmp_path, body):
    path = tmp_path / "cfg.py"
    path.write_text(textwrap.dedent(body))
    return str(path)


def test_unknown_top_level_key(tmp_path):
    path = _write(tmp_path, """
        from configs import synthetic_shapes_vit
        def get_config(arg=None):
            c = synthetic_shapes_vit.get_config("test")
            c.totl_steps = 3
            return c
    """)
    with pytest.raises(ConfigError, match=r"config.totl_steps: unknown top-level key"):
        config_lib.load_config(path)


def test_negative_and_missing(tmp_path):
    path = _write(tmp_path, """
        from configs import synthetic_shapes_vit
        def get_config(arg=None):
            c = synthetic_shapes_vit.get_config("test")
            c.batch_size = 0
            return c
    """)
    with pytest.raises(ConfigError, match=r"config.batch_size=0: must be positive"):
        config_lib.load_config(path)
    path = _write(tmp_path, """
        from configs import synthetic_shapes_vit
        def get_config(arg=None):
            c = synthetic_shapes_vit.get_config("test")
            c.model.name = ""
            return c
    """)
    with pytest.raises(ConfigError, match=r"config.model.name: required"):
        config_lib.load_config(path)


def test_project_from_path():
    assert cli.project_from_path("projects/vivit/configs/k400.py") == "vivit"
    assert cli.project_from_path("configs/synthetic_shapes_vit.py") == ""


def test_a_split_switched_to_a_prepared_dataset_takes_its_keys():
    with pytest.raises(ConfigError, match=r"config.data.train.path: unknown key\. Known keys "
                       r"here: .*num_train.* \(the keys of dataset 'synthetic_shapes'; to train "
                       r"on a folder written by tools.prepare_dataset, first set "
                       r"--config.data.train.name=array_record, which takes path\)"):
        config_lib.load_config(DEMO, ["data.train.path=/data/pets"])
    # The name is applied first, whatever the order; the synthetic set's keys are dropped.
    c = config_lib.load_config(DEMO + ":test", [
        "data.train.path=/data/pets", "data.train.preprocess=x", "data.train.name=array_record"])
    assert c.data.train.to_dict() == {"name": "array_record", "split": "train",
                                      "path": "/data/pets", "preprocess": "x"}
    assert c.data.eval.num_train == 512  # Untouched.
    # A new key takes the type of the argument's default (path: str).
    assert config_lib.load_config(DEMO, ["data.train.name=array_record",
                                         "data.train.path=123"]).data.train.path == "123"


def test_evaluator_keys_can_be_added_and_an_evaluator_removed():
    c = config_lib.load_config(DEMO, ["evaluators.classification.topk=(1, 3)"])
    assert c.evaluators.classification.topk == (1, 3)
    with pytest.raises(ConfigError, match=r"config.evaluators.classification.top_k: unknown key"):
        config_lib.load_config(DEMO, ["evaluators.classification.top_k=(1, 3)"])
    with pytest.raises(ConfigError, match=r"or remove the evaluator: "
                       r"--config.evaluators.classification=none"):
        config_lib.load_config(DEMO, ["evaluators.classification=x"])
    assert "classification" not in config_lib.load_config(
        DEMO, ["evaluators.classification=none"]).evaluators
