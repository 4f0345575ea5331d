"""Run guards: non-finite losses or gradients, and the count of skipped corrupt records."""

from __future__ import annotations

import json
from collections.abc import Callable

import numpy as np


class NonFiniteError(FloatingPointError):
    """The loss or the gradient of a train step was NaN or Inf (message names the step)."""


def raise_if_nonfinite(step: int, metrics: dict, checkpoint_note: Callable[[], str]) -> None:
    """Raises NonFiniteError when the step metrics say the update of `step` was not finite.

    `metrics` holds scalars `loss`, `grad_norm` and `nonfinite` (1.0 when the loss or
    gradient had a NaN or Inf; the step then left params and optimizer state unchanged).
    `checkpoint_note()` says what happened to the checkpoints, for the message (called only
    when raising).
    """
    if not float(metrics["nonfinite"]):
        return
    raise NonFiniteError(
        f"step {step}: the loss ({float(metrics['loss'])}) or the gradient (global norm "
        f"{float(metrics['grad_norm'])}) is NaN or Inf; training stopped and the state after "
        f"this step was not saved. {checkpoint_note()} Lower config.optimizer.lr or set "
        "config.optimizer.grad_clip_norm, check the data, or set config.on_nonfinite='skip' "
        "to skip such updates.")


def records_read(iterator_state: bytes | str | dict, process_index: int,
                 process_count: int) -> int:
    """Returns how many records this process's train DataLoader has read so far.

    Takes the DataLoader iterator's `get_state()` (grain state version 2: the last sampler
    index each worker yielded). Worker w of process p reads sampler indices
    p + c * (w + W * j), j = 0, 1, ... (c processes, W workers, W = 1 without workers).
    """
    state = iterator_state
    if isinstance(state, bytes | str):
        state = json.loads(state)
    workers = max(int(state.get("worker_count", 0)), 1)
    stride = process_count * workers
    total = 0
    for worker, last_index in state["last_seen_indices"].items():
        first_index = process_index + process_count * int(worker)
        total += max((int(last_index) - first_index) // stride + 1, 0)
    return total


def skipped_records(iterator_state: bytes | str | dict, batches: int, local_batch: int,
                    process_index: int, process_count: int) -> int:
    """Returns the records this process dropped as corrupt: read minus used in `batches`."""
    read = records_read(iterator_state, process_index, process_count)
    return max(read - batches * local_batch, 0)


def window_means(window: list[dict]) -> dict[str, float]:
    """Averages per-step metrics over a log window ("train/<name>"); non-finite steps are
    left out of the averages and counted in `train/nonfinite_steps`."""
    out = {}
    finite = [not float(m.get("nonfinite", 0.0)) for m in window]
    kept = [m for m, ok in zip(window, finite) if ok] or window
    for key in window[0]:
        if key != "nonfinite":
            out[f"train/{key}"] = float(np.mean([m[key] for m in kept]))
    if "nonfinite" in window[0]:
        out["train/nonfinite_steps"] = float(len(window) - sum(finite))
    return out
