"""The device mesh, logical-axis rules (dp / fsdp / fsdp_tp) and batch placement.

One mesh with axes ("data", "fsdp", "tensor") serves every run. Parameters carry logical
axis names (see framework/layers); a rule list maps those names to mesh axes. The batch is
split over ("data", "fsdp").
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import numpy as np
from flax import linen as nn
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

from framework.registry import ConfigError
from framework.trees import key_names

MESH_AXES = ("data", "fsdp", "tensor")
BATCH_AXES = ("data", "fsdp")

Rules = tuple[tuple[str, Any], ...]

# A rule maps a logical axis name to mesh axes. The name "*" stands for "the largest
# dimension not yet assigned that the mesh axes divide" (big_vision's FSDP rule), so every
# parameter is split along its largest axis whatever its names. Rules apply in order.
PRESET_RULES: dict[str, Rules] = {
    "dp": (("batch", BATCH_AXES),),
    "fsdp": (
        ("batch", BATCH_AXES),
        ("*", "fsdp"),
    ),
    "fsdp_tp": (
        ("batch", BATCH_AXES),
        ("mlp", "tensor"),
        ("heads", "tensor"),
        ("vocab", "tensor"),
        ("classes", "tensor"),
        ("*", "fsdp"),
    ),
}


def mesh_shape(mesh_config: Mapping[str, int], num_devices: int) -> dict[str, int]:
    """Resolves `mesh_config` ({"data": -1, "fsdp": 4, ...}) against `num_devices`.

    Returns {axis: size} for every axis of MESH_AXES; raises ConfigError saying what would
    fit when the sizes do not multiply to the device count.
    """
    sizes = {axis: int(mesh_config.get(axis, 1)) for axis in MESH_AXES}
    free = [axis for axis, size in sizes.items() if size == -1]
    if len(free) > 1:
        raise ConfigError(f"config.mesh: only one axis may be -1, got {', '.join(free)} = -1.")
    fixed = math.prod(size for size in sizes.values() if size != -1)
    if free:
        if num_devices % fixed:
            raise ConfigError(
                f"config.mesh={_fmt(sizes)}: the fixed axes need a multiple of {fixed} "
                f"devices but there are {num_devices}; pick sizes whose product divides "
                f"{num_devices}, e.g. {_suggest(num_devices)}.")
        sizes[free[0]] = num_devices // fixed
    elif fixed != num_devices:
        raise ConfigError(
            f"config.mesh={_fmt(sizes)} needs {fixed} devices but there are {num_devices}; "
            f"use sizes that multiply to {num_devices}, e.g. {_suggest(num_devices)}, "
            "or set one axis to -1.")
    return sizes


def _fmt(sizes: Mapping[str, int]) -> str:
    return "(" + ", ".join(f"{a}={s}" for a, s in sizes.items()) + ")"


def _suggest(num_devices: int) -> str:
    return (f"--config.mesh.data={num_devices} --config.mesh.fsdp=1 --config.mesh.tensor=1 "
            f"or --config.mesh.data=1 --config.mesh.fsdp={num_devices}")


def make_mesh(mesh_config: Mapping[str, int], devices: Sequence[jax.Device] | None = None) -> Mesh:
    """Builds the ("data", "fsdp", "tensor") mesh over `devices` (default: all devices)."""
    devices = list(devices if devices is not None else jax.devices())
    sizes = mesh_shape(mesh_config, len(devices))
    shape = tuple(sizes[a] for a in MESH_AXES)
    return jax.make_mesh(shape, MESH_AXES, axis_types=(AxisType.Auto,) * len(shape),
                         devices=devices)


def logical_rules(rules: str | Sequence[Sequence[Any]]) -> Rules:
    """Returns the rule tuple for a preset name ("dp", "fsdp", "fsdp_tp") or explicit rules."""
    if isinstance(rules, str):
        if rules not in PRESET_RULES:
            raise ConfigError(f"config.sharding.rules={rules!r}: unknown preset; known: "
                              f"{', '.join(PRESET_RULES)} (or a tuple of (logical, mesh) pairs).")
        return PRESET_RULES[rules]
    out = []
    for pair in rules:
        if len(pair) != 2:
            raise ConfigError(f"config.sharding.rules: {pair!r} is not a (logical, mesh) pair.")
        logical, axes = pair
        for axis in (axes,) if isinstance(axes, str) or axes is None else axes:
            if axis is not None and axis not in MESH_AXES:
                raise ConfigError(f"config.sharding.rules: {pair!r} names mesh axis {axis!r}; "
                                  f"the mesh axes are {', '.join(MESH_AXES)}.")
        out.append((logical, tuple(axes) if isinstance(axes, list) else axes))
    return tuple(out)


def activation_rules(rules: Rules) -> Rules:
    """Returns the rules for activation names (`batch`, `act_*`) for flax's rule context.

    Parameter names are resolved by `param_shardings` (which checks divisibility), not by
    flax's context, so that initialisers that reshape kernels see no constraints.
    """
    return tuple((name, axes) for name, axes in rules
                 if name == "batch" or name.startswith("act_"))


def spec_for(shape: Sequence[int], names: Sequence[str | None], mesh: Mesh,
             rules: Rules) -> PartitionSpec:
    """Returns the PartitionSpec of an array of `shape` whose dims have logical `names`.

    Rules are tried in order; a rule applies to a dimension when its mesh axes are unused in
    this array and their size divides the dimension, so indivisible dims stay replicated.
    The logical name "*" picks the largest such dimension still unassigned.
    """
    assigned: list[Any] = [None] * len(shape)
    used: set[str] = set()
    for logical, axes in rules:
        if axes is None or (logical != "*" and logical not in names):
            continue
        axes_tuple = (axes,) if isinstance(axes, str) else tuple(axes)
        size = math.prod(mesh.shape[a] for a in axes_tuple)
        if used & set(axes_tuple) or size == 1:
            continue
        if logical == "*":
            free = [d for d in range(len(shape)) if assigned[d] is None and shape[d] % size == 0]
            if not free:
                continue
            dim = max(free, key=lambda d: (shape[d], -d))
        else:
            dim = list(names).index(logical)
            if assigned[dim] is not None or shape[dim] % size:
                continue
        assigned[dim] = axes
        used.update(axes_tuple)
    return PartitionSpec(*assigned)


def param_shardings(abstract_boxed: Any, mesh: Mesh, rules: Rules) -> Any:
    """Maps a tree of abstract params boxed with logical names to a tree of NamedShardings.

    `abstract_boxed` is the output of `jax.eval_shape(model.init, ...)["params"]` (or any
    boxed collection). Leaves without names (unboxed, e.g. BatchNorm statistics) match only
    the "*" rule: replicated under "dp", split along their largest divisible dim under
    "fsdp" / "fsdp_tp". Returns the unboxed tree structure.
    """

    def one(leaf):
        if isinstance(leaf, nn.LogicallyPartitioned):
            value = leaf.unbox(apply_constraint=False)
            names = leaf.names
        else:
            value, names = leaf, (None,) * len(np.shape(leaf))
        return NamedSharding(mesh, spec_for(value.shape, names, mesh, rules))

    return jax.tree.map(one, abstract_boxed,
                        is_leaf=lambda x: isinstance(x, nn.LogicallyPartitioned))


def state_shardings_like(abstract_tree: Any, params_abstract: Any, params_shardings: Any,
                         mesh: Mesh) -> Any:
    """Shardings for a tree (e.g. optimizer state) whose leaves mirror params by path.

    A leaf whose key path ends with a parameter's key path and has that parameter's shape
    gets the parameter's sharding; any other leaf (counts, factored statistics) is replicated.
    """
    by_path = {}
    for (path, leaf), sharding in zip(
            jax.tree_util.tree_flatten_with_path(params_abstract)[0],
            jax.tree.leaves(params_shardings)):
        by_path[key_names(path)] = (tuple(leaf.shape), sharding)
    replicated = NamedSharding(mesh, PartitionSpec())

    def one(path, leaf):
        names = key_names(path)
        for start in range(len(names)):
            hit = by_path.get(names[start:])
            if hit is not None and hit[0] == tuple(np.shape(leaf)):
                return hit[1]
        return replicated

    return jax.tree_util.tree_map_with_path(one, abstract_tree)



def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Returns the sharding of a batch array: leading dim split over ("data", "fsdp")."""
    return NamedSharding(mesh, PartitionSpec(BATCH_AXES))


def check_batch_size(global_batch: int, mesh: Mesh, process_count: int | None = None,
                     key: str = "config.batch_size") -> None:
    """Raises ConfigError when `global_batch` does not split evenly over the data axes/hosts."""
    process_count = jax.process_count() if process_count is None else process_count
    shards = math.prod(mesh.shape[a] for a in BATCH_AXES)
    need = math.lcm(shards, process_count)
    if global_batch % need:
        lower = max(need, global_batch // need * need)
        raise ConfigError(
            f"{key}={global_batch} does not divide over the batch axes "
            f"(data={mesh.shape['data']} x fsdp={mesh.shape['fsdp']} = {shards} shards, "
            f"{process_count} process(es)); use a multiple of {need}, e.g. {lower} or "
            f"{lower + need}.")


def shard_batch(local_batch: Mapping[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
    """Assembles global arrays from this process's part of the batch.

    Takes a dict of numpy arrays with a leading per-process batch dim (B_local, ...) and
    returns a dict of jax.Arrays of shape (B_local * process_count, ...) split over
    ("data", "fsdp").
    """
    sharding = batch_sharding(mesh)
    count = jax.process_count()
    return {
        k: jax.make_array_from_process_local_data(
            sharding, np.asarray(v), (np.shape(v)[0] * count,) + tuple(np.shape(v)[1:]))
        for k, v in local_batch.items()
    }


def abstract_global_batch(local_batch: Mapping[str, np.ndarray],
                          mesh: Mesh) -> dict[str, jax.ShapeDtypeStruct]:
    """Returns ShapeDtypeStructs (with the batch sharding) of the global batch."""
    sharding = batch_sharding(mesh)
    count = jax.process_count()
    return {
        k: jax.ShapeDtypeStruct((np.shape(v)[0] * count,) + tuple(np.shape(v)[1:]),
                                np.asarray(v).dtype, sharding=sharding)
        for k, v in local_batch.items()
    }
