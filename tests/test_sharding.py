"""Mesh construction, logical rules and batch checks."""

import jax
import pytest

from framework import sharding
from framework.registry import ConfigError


def test_mesh_fill_axis():
    mesh = sharding.make_mesh({"data": 2, "fsdp": -1, "tensor": 2})
    assert dict(mesh.shape) == {"data": 2, "fsdp": 2, "tensor": 2}


def test_mesh_mismatch_says_what_fits():
    with pytest.raises(ConfigError, match=r"needs 6 devices but there are 8.*--config.mesh"):
        sharding.make_mesh({"data": 3, "fsdp": 2, "tensor": 1})
    with pytest.raises(ConfigError, match="multiple of 3"):
        sharding.make_mesh({"data": -1, "fsdp": 3, "tensor": 1})
    with pytest.raises(ConfigError, match="only one axis may be -1"):
        sharding.make_mesh({"data": -1, "fsdp": -1, "tensor": 1})


def test_batch_not_divisible_suggests():
    mesh = sharding.make_mesh({"data": 2, "fsdp": 4, "tensor": 1})
    with pytest.raises(ConfigError, match=r"config.batch_size=20 .* multiple of 8, e.g. 16 or 24"):
        sharding.check_batch_size(20, mesh)
    sharding.check_batch_size(24, mesh)


def test_spec_rules_priority_and_divisibility():
    mesh = sharding.make_mesh({"data": 1, "fsdp": 4, "tensor": 2})
    rules = sharding.logical_rules("fsdp_tp")
    spec = sharding.spec_for((64, 2, 32), ("embed", "heads", "kv"), mesh, rules)
    assert tuple(spec) == ("fsdp", "tensor", None)
    spec = sharding.spec_for((1, 196, 64), (None, None, "embed"), mesh, rules)
    assert tuple(spec) == (None, "fsdp", None)  # "*": the largest divisible dimension.
    spec = sharding.spec_for((64, 256), ("embed", "mlp"), mesh, rules)
    assert tuple(spec) == ("fsdp", "tensor")
    # A dimension the mesh axis does not divide stays replicated.
    spec = sharding.spec_for((7,), ("classes",), mesh, rules)
    assert tuple(spec) == (None,)
    spec = sharding.spec_for((12, 6), ("embed", "classes"), mesh, rules)
    assert tuple(spec) == ("fsdp", "tensor")


def test_unknown_preset():
    with pytest.raises(ConfigError, match="unknown preset"):
        sharding.logical_rules("zero3")


def test_shard_batch_global_shape():
    import numpy as np

    mesh = sharding.make_mesh({"data": 2, "fsdp": 4, "tensor": 1})
    batch = sharding.shard_batch({"x": np.arange(16.0).reshape(16, 1)}, mesh)
    assert batch["x"].shape == (16, 1)
    assert len(batch["x"].sharding.device_set) == 8
    assert batch["x"].addressable_shards[0].data.shape == (2, 1)
    np.testing.assert_array_equal(jax.device_get(batch["x"])[:, 0], np.arange(16.0))
