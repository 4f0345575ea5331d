"""A `jax.profiler` trace of chosen train steps (`--profile_steps A:B` of tools.train and
tools.benchmark), viewable in TensorBoard's profile plugin or Perfetto."""

from __future__ import annotations

import os

import jax

from framework.config import ConfigError

PROFILE_DIR = "profile"  # The trace's folder inside the workdir.


def parse_steps(text: str | None) -> tuple[int, int] | None:
    """Parses "A:B" (first and last step traced, 1-based, A <= B; "A" alone is A:A).

    Returns (A, B), or None for None / "". Raises ConfigError naming the problem.
    """
    if not text:
        return None
    parts = text.split(":")
    try:
        first, last = (int(parts[0]), int(parts[-1])) if len(parts) <= 2 else (0, -1)
    except ValueError:
        first, last = 0, -1
    if first < 1 or last < first:
        raise ConfigError(f"--profile_steps={text!r}: give the first and last step to trace "
                          "as A:B with 1 <= A <= B, e.g. --profile_steps 3:4.")
    return first, last


class StepProfiler:
    """Traces steps `steps[0]` .. `steps[1]` (inclusive) into `directory`.

    Call `before(step)` before a step is dispatched and `after(step, outputs)` once it is;
    `after` waits for `outputs` at the last traced step so that the trace holds the whole
    step, then stops the trace. `close()` stops a trace left open (a run that ended early).
    With `steps` None every call does nothing. The trace goes to
    DIRECTORY/plugins/profile/<run>/ as `*.xplane.pb` (TensorBoard: `tensorboard --logdir
    DIRECTORY`) and `perfetto_trace.json.gz` (open in https://ui.perfetto.dev).
    """

    def __init__(self, steps: tuple[int, int] | None, directory: str):
        self.steps = steps
        self.directory = directory
        self.active = False

    def before(self, step: int) -> None:
        """Starts the trace when `step` is the first traced step."""
        if self.steps and step == self.steps[0] and not self.active:
            os.makedirs(self.directory, exist_ok=True)
            jax.profiler.start_trace(self.directory, create_perfetto_trace=True)
            self.active = True

    def after(self, step: int, outputs: object = None) -> bool:
        """Stops the trace (after waiting for `outputs`) when `step` is the last traced;
        returns True when it did."""
        if self.active and step >= self.steps[1]:
            jax.block_until_ready(outputs)
            self.close()
            return True
        return False

    def close(self) -> None:
        """Stops the trace if it is running."""
        if self.active:
            jax.profiler.stop_trace()
            self.active = False


def trace_files(directory: str) -> list[str]:
    """Returns the trace files (`.xplane.pb`, `perfetto_trace.json.gz`) under `directory`."""
    found = []
    for root, _, files in os.walk(directory):
        found += [os.path.join(root, f) for f in files
                  if f.endswith(".xplane.pb") or f == "perfetto_trace.json.gz"]
    return sorted(found)
