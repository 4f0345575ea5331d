"""Parameter counts, FLOPs from XLA's cost analysis, and model FLOPs utilisation (MFU).

Conventions: XLA's cost analysis counts a multiply-add as 2 FLOPs ((M,K)@(K,N) is 2*M*K*N);
`compiled_flops` returns XLA's count as is, `forward_gflops` halves it (a multiply-add once,
the convention of papers' "GFLOPs" tables).

Checked with jax 0.10.2 on CPU: both `jax.jit(f).lower(...).cost_analysis()` and
`.lower(...).compile().cost_analysis()` return a dict with 'flops' (older jax versions return a
list with one dict per program; both forms are handled). The lowered analysis is of the whole
(unpartitioned) program; the compiled one is of the program each device runs, so for a step
jitted with sharded inputs over D devices `compiled_flops` is the per-device count (about the
global count / D); divide by per-device step time and per-device peak for MFU.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import jax
import numpy as np
from flax import linen as nn

from framework.trees import unbox


def count_params(params: Any) -> int:
    """Returns the number of scalars in a param tree of arrays or ShapeDtypeStructs.

    Flax boxed leaves (nn.LogicallyPartitioned and other AxisMetadata) are unboxed first.
    """
    leaves = jax.tree.leaves(unbox(params))
    return int(sum(math.prod(getattr(x, "shape", np.shape(x))) for x in leaves))


def compiled_flops(compiled: Any) -> float | None:
    """Returns XLA's FLOP count (a multiply-add = 2) of a compiled or lowered computation.

    Takes the result of `jax.jit(f).lower(*args).compile()` (or of `.lower(*args)`). Returns
    None when the backend gives no cost analysis or no 'flops' entry.
    """
    try:
        analysis = compiled.cost_analysis()
    except Exception:  # noqa: BLE001  (backends without cost analysis raise various errors)
        return None
    if isinstance(analysis, (list, tuple)):
        analysis = analysis[0] if analysis else None
    if not analysis or "flops" not in analysis:
        return None
    flops = float(analysis["flops"])
    return flops if flops >= 0 else None


def forward_gflops(apply_fn: Any, *abstract_args: Any, use_compiled: bool = False) -> float:
    """Returns the GFLOPs of one call `apply_fn(*abstract_args)`, a multiply-add counted once.

    `abstract_args` are pytrees of jax.ShapeDtypeStruct (or arrays); nothing is allocated.
    The count is XLA's cost analysis / 2 / 1e9 of the lowered (whole, unpartitioned) program;
    with `use_compiled`, or when the lowered program has no analysis, the program is compiled
    and its analysis used (the same numbers on CPU, slower). Raises RuntimeError when neither
    gives a FLOP count.
    """
    lowered = jax.jit(apply_fn).lower(*abstract_args)
    flops = None if use_compiled else compiled_flops(lowered)
    if flops is None:
        flops = compiled_flops(lowered.compile())
    if flops is None:
        raise RuntimeError(f"XLA gives no FLOP count on backend {jax.default_backend()!r}.")
    return flops / 2 / 1e9


def mfu(flops_per_step: float, step_time_s: float, peak_flops: float) -> float:
    """Returns model FLOPs utilisation: flops_per_step / step_time_s / peak_flops (0..1).

    All three in the same units and for the same devices (e.g. per-device XLA flops, a step's
    wall time and one device's peak FLOP/s). Returns 0.0 when a time or peak is not positive.
    """
    if step_time_s <= 0 or peak_flops <= 0:
        return 0.0
    return flops_per_step / step_time_s / peak_flops


def parse_input_spec(spec: str, key: str = "") -> jax.ShapeDtypeStruct:
    """Parses "dtype[d0,d1,...]" (e.g. "float32[32,224,224,3]", "int32[64]") into a
    ShapeDtypeStruct of that shape and dtype. Raises ValueError naming `key` when malformed."""
    text = str(spec).replace(" ", "")
    dtype, sep, rest = text.partition("[")
    if not sep or not rest.endswith("]"):
        raise ValueError(f"config.model_input.{key}={spec!r}: expected 'dtype[d0,d1,...]', "
                         "e.g. 'float32[224,224,3]'.")
    try:
        shape = tuple(int(d) for d in rest[:-1].split(",") if d)
        return jax.ShapeDtypeStruct(shape, np.dtype(dtype))
    except (TypeError, ValueError):
        raise ValueError(f"config.model_input.{key}={spec!r}: expected 'dtype[d0,d1,...]' with "
                         "a numpy dtype name and integer sizes.") from None


def abstract_example_batch(model_input: Any, batch_size: int = 1) -> dict:
    """Returns {key: ShapeDtypeStruct (batch_size, *shape)} from `config.model_input`
    ({key: "dtype[d0,...]"} for one example)."""
    out = {}
    for key, spec in dict(model_input).items():
        one = parse_input_spec(spec, key)
        out[key] = jax.ShapeDtypeStruct((batch_size,) + one.shape, one.dtype)
    return out


def model_cost(model: nn.Module, model_input: Any) -> tuple[int, float]:
    """Returns (parameter count, forward GFLOPs of one example, a multiply-add once).

    `model` is a registered model (called as `model.apply(variables, batch, train=False)`);
    `model_input` is `config.model_input`. Built abstractly: nothing is allocated, so it is
    fast for ViT-L sized models on CPU. For video models one example is one view, so the
    GFLOPs are "per view" as papers report them. The count is taken on `countable(model)`
    (no loops, dense attention); the parameter count is the same either way.
    """
    model = countable(model)
    batch = abstract_example_batch(model_input)
    variables = jax.eval_shape(
        lambda: model.init({"params": jax.random.key(0), "dropout": jax.random.key(1)},
                           _zeros(batch), train=False))
    variables = unbox(variables)
    gflops = forward_gflops(lambda v, b: model.apply(v, b, train=False), variables, batch)
    return count_params(variables.get("params", variables)), gflops


def _zeros(batch: dict) -> dict:
    import jax.numpy as jnp

    return {k: jnp.zeros(v.shape, v.dtype) for k, v in batch.items()}


def countable(model: nn.Module) -> nn.Module:
    """Returns `model` in a form whose every FLOP XLA's cost analysis sees, the same math.

    The cost analysis counts a loop body once and sees nothing inside a cuDNN call, so layer
    scans (`scan=True` on the model or in a tower's settings) are turned off and the
    attention core (`attention_implementation`: None, 'cudnn', 'blockwise') becomes XLA's
    dense form, 'xla'. Models without these fields come back unchanged.
    """
    settings = {"scan": (lambda v: v is True, False),
                "attention_implementation": (lambda v: v != "xla", "xla")}

    def changed(fields: Mapping) -> dict:
        return {name: new for name, (applies, new) in settings.items()
                if name in fields and applies(fields[name])}

    fields = {f: getattr(model, f, None) for f in getattr(model, "__dataclass_fields__", {})}
    changes = changed(fields)
    for name, value in fields.items():
        if isinstance(value, Mapping) and changed(value):
            changes[name] = {**value, **changed(value)}
    return model.clone(**changes) if changes else model
