"""Metric writers (JSONL, TensorBoard, optionally Weights & Biases) and a progress line.

Metric names (the contract tools rely on): `train/loss`, `train/lr`,
`train/examples_per_sec`, `eval/<evaluator>/<metric>` (e.g. `eval/classification/top1`).
"""

from __future__ import annotations

import json
import math
import os
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np


class MetricWriter:
    """Writes scalars to `WORKDIR/metrics.jsonl` and TensorBoard events in `WORKDIR/tensorboard/`.

    Each `write(step, metrics)` appends one line `{"step": step, **metrics}` to metrics.jsonl
    and flushes it. Values become Python ints (integer values) or floats; a non-finite float
    (NaN, +-inf) is written as JSON `null` (JSON has no NaN), while TensorBoard gets the float
    as is. A resumed run appends to the same file, so a step may appear twice.

    Only one process should write: pass `enabled=jax.process_index() == 0`. When disabled,
    nothing is created or written and every method is a no-op.

    `wandb` (config.wandb) also sends the scalars to Weights & Biases when its `enabled` is
    true (see WandbWriter); otherwise `wandb` is never imported.
    """

    def __init__(self, workdir: str, enabled: bool = True, wandb: Mapping | None = None):
        """Takes the run's directory (created if missing), whether this process writes, and
        the W&B options (config.wandb; None or enabled=False: no W&B)."""
        self.enabled = enabled
        self.path = os.path.join(workdir, "metrics.jsonl")
        self._file = None
        self._tb = None
        self._wandb = None
        if enabled:
            from tensorboardX import SummaryWriter

            os.makedirs(workdir, exist_ok=True)
            if wandb and wandb.get("enabled"):
                self._wandb = WandbWriter(workdir, wandb)
            self._file = open(self.path, "a")
            self._tb = SummaryWriter(os.path.join(workdir, "tensorboard"), flush_secs=30)

    def write(self, step: int, metrics: Mapping[str, Any]) -> None:
        """Writes the scalars `metrics` (name -> number or 0-d/size-1 array) at `step`."""
        if not self.enabled:
            return
        values = {name: _scalar(name, value) for name, value in metrics.items()}
        line = {"step": int(step)}
        line.update({k: v if not isinstance(v, float) or math.isfinite(v) else None
                     for k, v in values.items()})
        self._file.write(json.dumps(line) + "\n")
        self._file.flush()
        for name, value in values.items():
            self._tb.add_scalar(name, value, int(step))
        self._tb.flush()
        if self._wandb is not None:
            self._wandb.write(step, values)

    def write_text(self, step: int, name: str, text: str) -> None:
        """Writes `text` (a config dump, a param table) to TensorBoard's text tab under `name`.

        Lines are indented by four spaces so TensorBoard's markdown shows them preformatted.
        """
        if not self.enabled:
            return
        self._tb.add_text(name, "\n".join("    " + line for line in text.splitlines()),
                          int(step))
        self._tb.flush()

    def close(self) -> None:
        """Flushes and closes both outputs; later writes are errors."""
        if self._file is not None:
            self._file.close()
            self._tb.close()
            self._file = self._tb = None
        if self._wandb is not None:
            self._wandb.close()
            self._wandb = None

    def __enter__(self) -> MetricWriter:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


WANDB_MODES = ("online", "offline")


def check_wandb(options: Mapping | None) -> None:
    """Checks config.wandb before a run starts: when `enabled`, its `mode` must be one of
    WANDB_MODES and the wandb package installed. Raises ConfigError naming the fix."""
    import importlib.util

    from framework.registry import ConfigError

    if not options or not options.get("enabled"):
        return
    mode = options.get("mode", "online")
    if mode not in WANDB_MODES:
        raise ConfigError(f"config.wandb.mode={mode!r}: must be one of "
                          f"{', '.join(WANDB_MODES)}.")
    if importlib.util.find_spec("wandb") is None:
        raise ConfigError("config.wandb.enabled=True needs the wandb package: "
                          "pip install -e '.[wandb]' (or set config.wandb.enabled=False).")


class WandbWriter:
    """Sends scalars to a Weights & Biases run (needs the optional extra `wandb`).

    Options (config.wandb): `project`, `entity` ("" = the account's default), `name` ("" =
    the workdir's name), `mode` ("online", or "offline": files under WORKDIR/wandb/ to sync
    later with `wandb sync`), `tags` (tuple). The run's id is kept in WORKDIR/wandb_id.txt so
    a resumed training run continues the same W&B run; WORKDIR/config.json, when present, is
    logged as the run's config.
    """

    def __init__(self, workdir: str, options: Mapping):
        """Starts (or resumes) the W&B run of `workdir` with `options`."""
        check_wandb(options)
        import wandb

        mode = options.get("mode", "online")
        id_path = os.path.join(workdir, "wandb_id.txt")
        if os.path.exists(id_path):
            with open(id_path) as f:
                run_id = f.read().strip()
        else:
            run_id = uuid.uuid4().hex[:12]
            with open(id_path, "w") as f:
                f.write(run_id + "\n")
        config_path = os.path.join(workdir, "config.json")
        run_config = None
        if os.path.exists(config_path):
            with open(config_path) as f:
                run_config = json.load(f)
        self._run = wandb.init(
            project=options.get("project") or "tessera", entity=options.get("entity") or None,
            name=options.get("name") or os.path.basename(os.path.abspath(workdir)),
            tags=list(options.get("tags") or ()), mode=mode, dir=workdir, id=run_id,
            resume="allow", config=run_config)

    def write(self, step: int, values: Mapping[str, float]) -> None:
        """Logs the scalars `values` at `step` (W&B drops steps below one it has seen)."""
        self._run.log(dict(values), step=int(step))

    def close(self) -> None:
        """Finishes the run (uploads what is left in online mode)."""
        self._run.finish()


class Progress:
    """Builds a one-line progress report: step/total, percent, steps/s, examples/s, ETA, loss, lr.

    `update(step, metrics)` returns the line and sets `steps_per_sec` and `examples_per_sec`,
    the rates since the previous update (or since construction for the first one).

    Compile time: the clock starts when Progress is built, so build it after the train step
    is compiled (`jax.jit(...).lower(...).compile()`, as the trainer does) and the compile is
    not counted. The ETA uses the rate measured from the first update on once there are two
    updates, so anything slow before the first update (a lazily compiled first step, warm-up
    of the input pipeline) does not distort it; `restart(step)` resets the clock by hand.
    """

    def __init__(self, total_steps: int, start_step: int, global_batch_size: int,
                 clock: Callable[[], float] = time.perf_counter):
        """Takes the run's last step, the step it starts from (after resume), the global batch
        size (examples per step) and a clock returning seconds (replaceable in tests)."""
        self.total_steps = total_steps
        self.global_batch_size = global_batch_size
        self._clock = clock
        self.steps_per_sec = 0.0
        self.examples_per_sec = 0.0
        self.restart(start_step)

    def restart(self, step: int) -> None:
        """Restarts the clock at `step` (now): earlier time counts in no rate."""
        self._last = self._first = (step, self._clock())
        self._updates = 0

    def update(self, step: int, metrics: Mapping[str, Any] | None = None) -> str:
        """Records that `step` is done and returns the progress line.

        `metrics` may hold `train/loss` and `train/lr`, which are added to the line.
        """
        now = self._clock()
        last_step, last_time = self._last
        elapsed = now - last_time
        done = step - last_step
        self.steps_per_sec = done / elapsed if elapsed > 0 and done > 0 else 0.0
        self.examples_per_sec = self.steps_per_sec * self.global_batch_size
        self._updates += 1
        if self._updates == 1:
            self._first = (step, now)
            rate = self.steps_per_sec
        else:
            first_step, first_time = self._first
            rate = (step - first_step) / max(now - first_time, 1e-9)
        self._last = (step, now)

        remaining = max(self.total_steps - step, 0)
        eta = _hms(remaining / rate) if rate > 0 else ("0:00:00" if not remaining else "?")
        percent = 100.0 * step / max(self.total_steps, 1)
        parts = [
            f"step {step}/{self.total_steps} ({percent:.1f}%)",
            f"{self.steps_per_sec:.2f} steps/s",
            f"{self.examples_per_sec:,.1f} examples/s",
            f"ETA {eta}",
        ]
        metrics = metrics or {}
        if "train/loss" in metrics:
            parts.append(f"loss {float(metrics['train/loss']):.4f}")
        if "train/lr" in metrics:
            parts.append(f"lr {float(metrics['train/lr']):.3e}")
        return " | ".join(parts)


def _hms(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def _scalar(name: str, value: Any) -> int | float:
    """Returns `value` (a number or a size-1 array of any numeric dtype) as a Python number."""
    array = np.asarray(value)
    if array.size != 1:
        raise TypeError(f"metric {name!r}: expected a scalar, got shape {array.shape}.")
    array = array.reshape(())
    if array.dtype.kind in "biu":
        return int(array)
    try:
        return float(array.astype(np.float64))
    except (TypeError, ValueError) as e:
        raise TypeError(f"metric {name!r}: {value!r} is not a number.") from e
