"""Notices that the job is asked to stop (SIGTERM, Ctrl-C, or JAX's preemption notice) so that
the trainer can checkpoint at the next step boundary and exit cleanly.

The first Ctrl-C (SIGINT) asks for the same clean stop as SIGTERM; a second one aborts at
once (KeyboardInterrupt), losing the steps since the last checkpoint. One process: a
signal handler sets a flag. Several processes: JAX's preemption sync point
(`multihost_utils.reached_preemption_sync_point`), which turns a SIGTERM seen by any process
into the same stopping step on every process; without JAX's preemption service the flags of
all processes are gathered every step instead. With JAX's service, Ctrl-C is passed on
to it as a SIGTERM to this process.
"""

from __future__ import annotations

import logging
import os
import signal
import threading

import jax
import numpy as np
from jax.experimental import multihost_utils

log = logging.getLogger(__name__)


class PreemptionWatch:
    """Answers `should_stop(step)`: the same answer on every process at the same step.

    `reason` names what asked for the stop ("SIGTERM", "Ctrl-C", "preemption"). Use as a
    context manager (it restores the previous SIGTERM and SIGINT handlers on exit).
    """

    def __init__(self):
        """Installs the SIGINT handler, and the SIGTERM one unless JAX's preemption service
        handles SIGTERM (signal handlers need the main thread; elsewhere none is installed)."""
        self._requested = False
        self.reason = "preemption"
        self._previous = {}
        self._use_jax_service = jax.process_count() > 1 and _jax_preemption_service()
        if threading.current_thread() is threading.main_thread():
            if not self._use_jax_service:
                self._previous[signal.SIGTERM] = signal.signal(signal.SIGTERM, self._on_sigterm)
            self._previous[signal.SIGINT] = signal.signal(signal.SIGINT, self._on_sigint)

    def _on_sigterm(self, signum, frame) -> None:
        del signum, frame
        if not self._requested:
            log.warning("SIGTERM: saving a checkpoint after the current step, then exiting.")
            self.reason = "SIGTERM"
        self._requested = True

    def _on_sigint(self, signum, frame) -> None:
        del signum, frame
        if self.reason == "Ctrl-C":
            raise KeyboardInterrupt
        self.reason = "Ctrl-C"
        log.warning("Ctrl-C: saving a checkpoint after the current step, then exiting. "
                    "Press Ctrl-C again to abort at once (losing the steps since the last "
                    "checkpoint).")
        if self._use_jax_service:  # JAX's notifier turns it into one stopping step for all.
            os.kill(os.getpid(), signal.SIGTERM)
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
        """Restores the SIGTERM and SIGINT handlers that were installed before."""
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}

    def __enter__(self) -> PreemptionWatch:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _jax_preemption_service() -> bool:
    from jax._src import distributed

    return distributed.global_state.preemption_sync_manager is not None
