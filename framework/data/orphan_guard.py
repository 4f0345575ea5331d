"""Data-loader worker processes end when the process that started them is gone.

grain starts its workers with multiprocessing; when the trainer is killed with SIGKILL they
would stay behind (holding memory, CPU and the trainer's output pipes). `exit_with_parent`
starts a daemon thread in the worker that ends it within a second of its parent's death.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time

_started = False


def exit_with_parent(poll_seconds: float = 0.5) -> None:
    """In a worker process: exits it (status 1) once its parent process has gone. Once per
    process; a no-op outside multiprocessing children (the trainer itself)."""
    global _started
    if _started or multiprocessing.parent_process() is None:  # Not a worker process.
        return
    _started = True
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll_seconds)
        os._exit(1)

    threading.Thread(target=watch, name="exit_with_parent", daemon=True).start()
