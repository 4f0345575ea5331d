"""Notices that the job is asked to stop (SIGTERM, or JAX's preemption notice) so that the
trainer can checkpoint at the next step boundary and exit cleanly.

One process: a SIGTERM handler sets a flag. Several processes: JAX's preemption sync point
(`multihost_utils.reached_preemption_sync_point`), which turns a SIGTERM seen by any process
into the same stopping step on every process; without JAX's preemption service the flags of
all processes are gathered every step instead.
"""

from __future__ import annotations

import logging
import signal
import threading

import jax
import numpy as np
from jax.experimental import multihost_utils

log = logging.getLogger(__name__)


class PreemptionWatch:
    """Answers `should_stop(step)`: the same answer on every process at the same step.

    Use as a context manager (it restores the previous SIGTERM handler on exit).
    """

    def __init__(self):
        """Installs the SIGTERM handler (unless JAX's preemption service handles SIGTERM)."""
        self._requested = False
        self._previous_handler = None
        self._use_jax_service = jax.process_count() > 1 and _jax_preemption_service()
        if not self._use_jax_service and threading.current_thread() is threading.main_thread():
            self._previous_handler = signal.signal(signal.SIGTERM, self._on_sigterm)

    def _on_sigterm(self, signum, frame) -> None:
        del signum, frame
        if not self._requested:
            log.warning("SIGTERM: saving a checkpoint after the current step, then exiting.")
        self._requested = True

    def should_stop(self, step: int) -> bool:
        """Returns True when every process should checkpoint after `step` and stop."""
        if self._use_jax_service:
            return bool(multihost_utils.reached_preemption_sync_point(step))
        if jax.process_count() > 1:
            flags = multihost_utils.process_allgather(np.int32(self._requested))
            return bool(np.any(flags))
        return self._requested

    def close(self) -> None:
        """Restores the SIGTERM handler that was installed before."""
        if self._previous_handler is not None:
            signal.signal(signal.SIGTERM, self._previous_handler)
            self._previous_handler = None

    def __enter__(self) -> PreemptionWatch:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _jax_preemption_service() -> bool:
    from jax._src import distributed

    return distributed.global_state.preemption_sync_manager is not None
