"""init_from: reading our / big_vision / Scenic checkpoints, the default adapter, the trainer."""

import logging

import jax
import numpy as np
import pytest
from flax import serialization
from init_helpers import abstract_init, init

from framework import config as config_lib
from framework import pretrained, trainer
from framework.models.vit import ViT
from framework.registry import ConfigError

DEMO = "configs/synthetic_shapes_vit.py:test"


def _vit(**kwargs):
    base = dict(num_classes=5, patch_size=(4, 4), hidden_size=16, depth=2, mlp_dim=32,
                num_heads=2)
    return ViT(**(base | kwargs))


def _params(module, image_shape=(1, 16, 16, 3)):
    return init(module, np.zeros(image_shape, np.float32))["params"]


def _abstract(module, image_shape=(1, 16, 16, 3)):
    from flax import linen as nn

    return nn.unbox(abstract_init(module, np.zeros(image_shape, np.float32)))["params"]


def _assert_same_flat(a, b):
    assert sorted(a) == sorted(b)
    for key in a:
        np.testing.assert_array_equal(np.asarray(a[key]), np.asarray(b[key]), err_msg=key)


def test_npz_and_scenic_files_round_trip(tmp_path):
    params = _params(_vit())
    flat = pretrained.flatten_tree(params)

    pretrained.save_npz(str(tmp_path / "vit.npz"), params)
    _assert_same_flat(pretrained.load_flat_params(str(tmp_path / "vit.npz")), flat)

    # big_vision training checkpoints hold "params/..." next to optimizer state "opt/...".
    np.savez(tmp_path / "bv.npz", **{f"params/{k}": np.asarray(v) for k, v in flat.items()},
             **{"opt/count": np.zeros(())})
    _assert_same_flat(pretrained.load_flat_params(str(tmp_path / "bv.npz"), "npz"), flat)

    scenic = {"optimizer": {"target": {"params": jax.device_get(params)}}, "global_step": 3}
    (tmp_path / "checkpoint_3").write_bytes(serialization.msgpack_serialize(scenic))
    _assert_same_flat(pretrained.load_flat_params(str(tmp_path / "checkpoint_3")), flat)


def test_missing_and_unreadable_checkpoints_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match=r"config.init_from.path=.*no such file"):
        pretrained.load_flat_params(str(tmp_path / "nope.npz"))
    (tmp_path / "bad.npz").write_bytes(b"not a zip file")
    with pytest.raises(ConfigError, match=r"cannot read it as a 'npz' checkpoint"):
        pretrained.load_flat_params(str(tmp_path / "bad.npz"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="no committed Tessera checkpoint"):
        pretrained.load_flat_params(str(tmp_path / "empty"))
    with pytest.raises(ConfigError, match="config.init_from.format='zip'"):
        pretrained.load_flat_params(str(tmp_path), "zip")


def test_default_adapter_resizes_posemb_and_keeps_dont_load_at_init():
    source = pretrained.flatten_tree(_params(_vit()))  # 4x4 grid of patches.
    target_model = _vit(num_classes=7)
    target = _abstract(target_model, (1, 32, 32, 3))  # 8x8 grid, another head.
    settings = {"path": "unused", "dont_load": ("^head/",)}
    params, report = pretrained.load_params(target, settings, source=source)
    flat = pretrained.flatten_tree(params)
    assert flat["pos_embedding"].shape == (1, 64, 16)
    grid = source["pos_embedding"].reshape(4, 4, 16)
    resized = flat["pos_embedding"].reshape(8, 8, 16)
    # Linear resizing keeps the mean and maps corners close to corners.
    np.testing.assert_allclose(resized.mean((0, 1)), grid.mean((0, 1)), atol=0.05)
    np.testing.assert_allclose(flat["embedding/kernel"], source["embedding/kernel"])
    assert isinstance(flat["head/kernel"], jax.ShapeDtypeStruct)  # Left at init.
    notes = {key: note for key, note, *_ in report.rows}
    assert notes["pos_embedding"].startswith("resized (1, 16, 16) -> (1, 64, 16)")
    assert notes["head/kernel"] == "init (dont_load)"
    assert report.unused == ["head/bias", "head/kernel"]
    assert "2 init" in pretrained.format_report(report)


def test_shape_mismatch_is_refused_with_the_keys():
    source = pretrained.flatten_tree(_params(_vit()))
    target = _abstract(_vit(num_classes=7))
    with pytest.raises(pretrained.IncompatibleCheckpointError,
                       match=r"head/kernel: checkpoint \(16, 5\), model \(16, 7\)"):
        pretrained.load_params(target, {"path": "unused"}, source=source)


def test_kernel_inflation_and_scanned_layout():
    kernel = np.arange(2 * 2 * 3 * 4, dtype=np.float32).reshape(2, 2, 3, 4)
    central = pretrained.inflate_kernel(kernel, 3, "central_frame")
    assert central.shape == (3, 2, 2, 3, 4)
    np.testing.assert_array_equal(central[1], kernel)
    assert not central[0].any() and not central[2].any()
    np.testing.assert_allclose(pretrained.inflate_kernel(kernel, 4, "average").sum(0), kernel)

    source = pretrained.flatten_tree(_params(_vit()))
    scanned = _abstract(_vit(scan=True))
    params, report = pretrained.load_params(scanned, {"path": "unused"}, source=source)
    flat = pretrained.flatten_tree(params)
    stacked = flat["Transformer/encoderblock/MlpBlock_0/Dense_0/kernel"]
    np.testing.assert_array_equal(
        stacked[1], source["Transformer/encoderblock_1/MlpBlock_0/Dense_0/kernel"])
    assert report.unused == [] and report.count("init") == 0


def test_prefixes_select_sub_trees():
    source = {f"img/{k}": v for k, v in pretrained.flatten_tree(_params(_vit())).items()}
    target = {"tower": _abstract(_vit())}
    params, report = pretrained.load_params(
        target, {"path": "unused", "source_prefix": "img", "target_prefix": "tower"},
        source=source)
    assert report.count("loaded") == len(source)
    np.testing.assert_array_equal(pretrained.flatten_tree(params)["tower/cls"], source["img/cls"])
    with pytest.raises(ConfigError, match="config.init_from.source_prefix='txt'"):
        pretrained.load_params(target, {"path": "unused", "source_prefix": "txt"}, source=source)


def test_trainer_initialises_a_fresh_run_from_a_workdir(tmp_path, caplog):
    data = f"data.data_dir={tmp_path / 'data'}"
    base = [data, "checkpoint.async_save=false", "log_every=1", "checkpoint_every=0"]
    first = trainer.train_and_evaluate(
        config_lib.load_config(DEMO, base + ["total_steps=2"]), str(tmp_path / "a"))
    # lr 0: the second run's params stay what it loaded.
    config = config_lib.load_config(
        DEMO, base + ["total_steps=1", "schedule.warmup_steps=0", "optimizer.lr=0.0",
                      f"init_from.path={tmp_path / 'a'}"])
    with caplog.at_level(logging.INFO, logger="framework.pretrained"):
        second = trainer.train_and_evaluate(config, str(tmp_path / "b"))
    jax.tree.map(np.testing.assert_array_equal, jax.device_get(second.state.params),
                 jax.device_get(first.state.params))
    assert "loaded" in caplog.text and "0 init" in caplog.text


def test_trainer_refuses_a_missing_init_checkpoint_before_compiling(tmp_path):
    config = config_lib.load_config(DEMO, [f"init_from.path={tmp_path / 'missing'}"])
    with pytest.raises(ConfigError, match=r"config.init_from.path=.*missing.*no such file"):
        trainer.build(config, str(tmp_path / "run"))
    config = config_lib.load_config(DEMO, [f"init_from.path={tmp_path}",
                                            "init_from.adapter=nope"])
    with pytest.raises(ConfigError, match="config.init_from.adapter='nope': unknown init_adapter"):
        trainer.build(config, str(tmp_path / "run"))
