"""Config loading, overrides and validation."""

import textwrap

import pytest

from framework import config as config_lib
from framework.registry import ConfigError

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
