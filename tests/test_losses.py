"""Losses and the top-k helper against hand-computed values."""

import jax.numpy as jnp
import numpy as np
import pytest

from framework import losses, registry
from framework.evaluators.classification import topk_correct
from framework.step import split_micro_batches


def test_softmax_xent_with_smoothing():
    logits = jnp.array([[2.0, 0.0, 0.0]])
    batch = {"label": jnp.array([0])}
    logp = np.log(np.exp([2.0, 0, 0]) / np.exp([2.0, 0, 0]).sum())
    plain, metrics = losses.softmax_xent()(logits, batch)
    np.testing.assert_allclose(plain, -logp[0], rtol=1e-6)
    assert metrics == {}
    smoothed, _ = losses.softmax_xent(label_smoothing=0.3)(logits, batch)
    target = np.array([0.7 + 0.1, 0.1, 0.1])
    np.testing.assert_allclose(smoothed, -(target * logp).sum(), rtol=1e-6)
    # A model that returns a dict gives its logits under "logits".
    np.testing.assert_allclose(losses.softmax_xent()({"logits": logits, "x": 0}, batch)[0],
                               plain)
    with pytest.raises(ValueError, match="'logits'"):
        losses.softmax_xent()({"scores": logits}, batch)


def test_loss_is_the_masked_mean_over_examples():
    logits = jnp.array([[2.0, 0.0], [0.0, 2.0], [5.0, -5.0]])
    batch = {"label": jnp.array([0, 0, 1]), "mask": jnp.array([True, True, False])}
    per_example = losses.softmax_cross_entropy(logits[:2], jnp.eye(2)[jnp.array([0, 0])])
    np.testing.assert_allclose(losses.softmax_xent()(logits, batch)[0], jnp.mean(per_example),
                               rtol=1e-6)


def test_sigmoid_xent_multi_label():
    logits = jnp.array([[0.0, 3.0]])
    batch = {"label": jnp.array([[1.0, 0.0]])}
    expected = np.log(2.0) + np.log1p(np.exp(3.0))
    np.testing.assert_allclose(losses.sigmoid_xent()(logits, batch)[0], expected, rtol=1e-6)


def test_registered_names():
    assert {"softmax_xent", "sigmoid_xent"} <= set(registry.LOSSES.names())
    with pytest.raises(registry.ConfigError, match=r"config.loss.smoothing: unknown key"):
        registry.LOSSES.build("softmax_xent", {"smoothing": 0.1}, "config.loss")


def test_topk_correct():
    logits = jnp.array([[0.1, 0.5, 0.4], [0.9, 0.05, 0.05]])
    labels = jnp.array([2, 0])
    np.testing.assert_array_equal(topk_correct(logits, labels, 1), [0.0, 1.0])
    np.testing.assert_array_equal(topk_correct(logits, labels, 2), [1.0, 1.0])


def test_masked_mean_and_micro_batches():
    values = jnp.array([1.0, 2.0, 3.0, 4.0])
    assert float(losses.masked_mean(values, {"mask": jnp.array([1, 1, 0, 0])})) == 1.5
    assert float(losses.masked_mean(values, {})) == 2.5
    micro = split_micro_batches({"x": jnp.arange(8)}, 4)["x"]
    np.testing.assert_array_equal(micro, [[0, 4], [1, 5], [2, 6], [3, 7]])
