"""Checkpoints: an orbax CheckpointManager over WORKDIR/checkpoints/<step>/.

Each checkpoint holds three items: `state` (the TrainState, every process writing its
shards), `data` (each process's grain iterator state) and `meta` (config and versions, JSON).
Saves are asynchronous and committed atomically; a directory left by an interrupted save is
never taken for a checkpoint, and is cleaned up when the next run opens the manager.
"""

from __future__ import annotations

import logging
import os
import platform
from typing import Any

import grain
import jax
import orbax.checkpoint as ocp

log = logging.getLogger(__name__)


class Checkpointer:
    """Saves and restores TrainState + data-iterator state + metadata under a workdir."""

    def __init__(self, workdir: str, max_to_keep: int | None = 3, async_save: bool = True):
        """Opens (creating if needed) WORKDIR/checkpoints with the given retention."""
        self.directory = os.path.join(os.path.abspath(workdir), "checkpoints")
        options = ocp.CheckpointManagerOptions(
            max_to_keep=max_to_keep,
            create=True,
            cleanup_tmp_directories=True,
            enable_async_checkpointing=async_save,
        )
        self.manager = ocp.CheckpointManager(
            self.directory, item_names=("state", "data", "meta"), options=options)

    def latest_step(self) -> int | None:
        """Returns the step of the newest committed checkpoint, or None when there is none."""
        return self.manager.latest_step()

    def all_steps(self) -> list[int]:
        """Returns the steps of every committed checkpoint, oldest first."""
        return sorted(self.manager.all_steps())

    def save(self, step: int, state: Any, data_iterator: Any, meta: dict) -> bool:
        """Starts saving `state`, `data_iterator`'s position and `meta` at `step`.

        Returns True if a save was started. Saving at a step that already has a checkpoint is
        a no-op. The data state is read now; the arrays are written in the background.
        """
        if step in self.manager.all_steps():
            return False
        items = {"state": ocp.args.StandardSave(state), "meta": ocp.args.JsonSave(meta)}
        if data_iterator is not None:
            items["data"] = grain.checkpoint.CheckpointSave(data_iterator)
        return self.manager.save(step, args=ocp.args.Composite(**items), force=True)

    def restore(self, step: int, abstract_state: Any, data_iterator: Any) -> tuple[Any, dict]:
        """Restores the checkpoint at `step`.

        `abstract_state` is a tree of jax.ShapeDtypeStruct carrying the target shardings;
        `data_iterator` (or None) is set to the saved position in place. Returns
        (state, meta).
        """
        items = {"state": ocp.args.StandardRestore(abstract_state),
                 "meta": ocp.args.JsonRestore()}
        if data_iterator is not None:
            items["data"] = grain.checkpoint.CheckpointRestore(data_iterator)
        restored = self.manager.restore(step, args=ocp.args.Composite(**items))
        return restored["state"], restored["meta"]

    def read_meta(self, step: int) -> dict:
        """Returns the `meta` item of the checkpoint at `step`."""
        return self.manager.restore(
            step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]

    def wait(self) -> None:
        """Blocks until every save in flight has been committed."""
        self.manager.wait_until_finished()

    def close(self) -> None:
        """Waits for saves in flight and releases the manager."""
        self.manager.wait_until_finished()
        self.manager.close()


def run_metadata(config_json: dict) -> dict:
    """Returns the `meta` item: the resolved config and the versions that wrote it."""
    import flax
    import optax

    return {
        "config": config_json,
        "versions": {
            "python": platform.python_version(),
            "jax": jax.__version__,
            "flax": flax.__version__,
            "optax": optax.__version__,
            "orbax": getattr(ocp, "__version__", "unknown"),
        },
        "process_count": jax.process_count(),
        "device_count": jax.device_count(),
    }
