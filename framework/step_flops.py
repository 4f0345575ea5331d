"""FLOPs of one whole train step, with loops counted as many times as they run.

XLA's cost analysis counts the body of a loop (a `lax.scan`, an `nn.scan` over layers) once,
so the FLOPs of a compiled step whose model scans its layers, or which accumulates gradients
over micro-batches in a scan, come out several times too low. For such steps the count here
is taken from an equivalent step that does the same arithmetic unrolled: the model with its
layer scans turned off and the whole batch as one micro-batch (the sum of the micro-batch
gradients is the full-batch gradient). That step is only lowered, never compiled or run.
"""

from __future__ import annotations

from typing import Any

import jax

from framework import flops as flops_lib
from framework import state_spec
from framework import step as step_lib


def train_step_flops(run: Any, example: dict, compiled: Any) -> float | None:
    """Returns XLA's FLOPs (a multiply-add = 2) of one train step over all devices.

    Takes `run` (framework.trainer.build's Run), the abstract global batch `example` (dict of
    ShapeDtypeStructs) and the compiled train step. Without layer scans or gradient
    accumulation it is the compiled per-device count times the number of devices; otherwise
    the whole-program count of the unrolled equivalent step (module docstring); it must then
    be called inside the run's mesh context. Returns None when the backend gives no count.
    """
    model = flops_lib.without_layer_scan(run.model)
    if model is run.model and run.grad_accum_steps == 1:
        per_device = flops_lib.compiled_flops(compiled)
        return None if per_device is None else per_device * int(run.mesh.devices.size)
    built = state_spec.abstract_training(model, example, run.config, run.mesh, run.rules)
    unrolled = step_lib.make_train_step(model, run.loss_fn, built.tx, built.schedule, 1)
    return flops_lib.compiled_flops(jax.jit(unrolled).lower(built.abstract_state, example))
