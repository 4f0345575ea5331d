"""LiT: a tiny two-tower checkpoint in big_vision's .npz layout loads with init_from (same
outputs), and a locked image tower is bit-identical after training and has no optimizer
state."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from framework import config as config_lib
from framework import flops, pretrained, registry, trainer
from framework.trees import key_names, unbox
from tools import cli

CONFIG = "projects/lit/configs/synthetic_lit.py:test"


def _flat(tree):
    return {"/".join(key_names(path)): leaf
            for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """The test config, its model, and a big_vision-layout .npz of random params."""
    tmp = tmp_path_factory.mktemp("lit")
    config = cli.load_config(CONFIG, [f"data.data_dir={tmp / 'data'}", "log_every=1"])
    cli.import_project(config)
    model = registry.MODELS.build("image_text.two_tower", config_lib.kwargs_of(config.model),
                                  "config.model")
    batch = flops.abstract_example_batch(config.model_input, batch_size=2)
    abstract = jax.eval_shape(lambda b: model.init(jax.random.key(0), b), batch)["params"]
    rng = np.random.default_rng(7)
    source = {key: rng.normal(0, 0.2, spec.shape).astype(np.float32)
              for key, spec in _flat(unbox(abstract)).items()}
    path = tmp / "lit_tiny.npz"
    np.savez(path, **source)  # big_vision's layout: one array per '/'-joined param path.
    return tmp, config, model, abstract, source, str(path)


def _inputs():
    rng = np.random.default_rng(0)
    return {"image": jnp.asarray(rng.uniform(-1, 1, (3, 32, 32, 3)), jnp.float32),
            "text": jnp.asarray(rng.integers(3, 259, (3, 56)), jnp.int32)}


def test_npz_checkpoint_loads_with_init_from(setup):
    _, config, model, abstract, source, path = setup
    assert {"img/embedding/kernel", "txt/Embed_0/embedding", "t"} <= set(source)
    init_from = {**config.init_from.to_dict(), "path": path, "format": "auto",
                 "target_prefix": ""}
    params, report = pretrained.load_params(unbox(abstract), init_from)
    assert report.count("loaded") == len(source) and not report.unused
    loaded = model.apply({"params": params}, _inputs())
    expected = model.apply({"params": pretrained.unflatten(source)}, _inputs())
    for key in ("zimg", "ztxt", "t"):
        np.testing.assert_array_equal(loaded[key], expected[key])


def test_locked_image_tower_is_bit_identical_and_stateless(setup):
    tmp, config, _, _, source, path = setup
    config = cli.load_config(CONFIG, [f"data.data_dir={tmp / 'data'}", "log_every=1",
                                             f"init_from.path={path}",
                                             "init_from.target_prefix="])
    assert config.model.lock_image and config.optimizer.freeze == ("^img/",)
    result = trainer.train_and_evaluate(config, str(tmp / "run"))
    params = {k: np.asarray(v) for k, v in _flat(result.state.params).items()}
    image_keys = [k for k in params if k.startswith("img/")]
    assert len(image_keys) > 10
    for key in image_keys:
        np.testing.assert_array_equal(params[key], source[key], err_msg=key)  # Bit-identical.
    assert any(not np.array_equal(params[k], source[k]) for k in params if k.startswith("txt/"))
    state_paths = ["/".join(key_names(path)) for path, _ in
                   jax.tree_util.tree_flatten_with_path(result.state.opt_state)[0]]
    assert not [p for p in state_paths if "/img/" in f"/{p}"]
    assert [p for p in state_paths if "/txt/" in f"/{p}"]
    assert 0.0 <= result.metrics["eval/zero_shot/top1"] <= 1.0
