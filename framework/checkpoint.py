"""Checkpoints: an orbax CheckpointManager over WORKDIR/checkpoints/<step>/.

Each checkpoint holds three items: `state` (the TrainState, every process writing its
shards), `data` (each process's grain iterator state) and `meta` (config and versions, JSON).
Saves are asynchronous and committed atomically; a directory left by an interrupted save is
never taken for a checkpoint, and is cleaned up when the next run opens the manager. A step
directory whose commit is incomplete (no commit marker, e.g. written by a non-atomic copy or
cut short on a filesystem without atomic rename) is moved aside to
WORKDIR/checkpoints_incomplete/ with a warning, so that the previous checkpoint is used.
"""

from __future__ import annotations

import contextlib
import logging
import os
import platform
import re
import shutil
import time
from typing import Any

import grain
import jax
import orbax.checkpoint as ocp
from etils import epath

from framework import checkpoint_integrity as integrity
from framework import trees
from framework.checkpoint_integrity import CheckpointCorruptError
from framework.registry import ConfigError

log = logging.getLogger(__name__)


class Checkpointer:
    """Saves and restores TrainState + data-iterator state + metadata under a workdir."""

    def __init__(self, workdir: str, max_to_keep: int | None = 3, async_save: bool = True,
                 read_only: bool = False):
        """Opens (creating if needed) WORKDIR/checkpoints with the given retention.

        Interrupted saves and checkpoints with an incomplete commit are reported (warnings)
        and set aside first; see the module docstring. With `read_only` (tools reading the
        checkpoints of a run that may still be training), nothing is created, set aside,
        cleaned up or saved.
        """
        self.directory = os.path.join(os.path.abspath(workdir), "checkpoints")
        if not read_only:
            set_aside_incomplete(self.directory)
        options = ocp.CheckpointManagerOptions(
            max_to_keep=max_to_keep,
            create=not read_only,
            cleanup_tmp_directories=not read_only,
            enable_async_checkpointing=async_save,
            read_only=read_only,
        )
        self.manager = ocp.CheckpointManager(
            self.directory, item_names=("state", "data", "meta"), options=options)
        self._in_flight: int | None = None  # The step of the asynchronous save in flight.
        self._failed: WorkdirWriteError | None = None

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
        meta = integrity.record(meta, state, data_iterator)
        items = {"state": ocp.args.StandardSave(state), "meta": ocp.args.JsonSave(meta)}
        if data_iterator is not None:
            items["data"] = grain.checkpoint.CheckpointSave(data_iterator)
        with self._writing(step):
            started = self.manager.save(step, args=ocp.args.Composite(**items), force=True)
        self._in_flight = step
        return started

    @contextlib.contextmanager
    def _writing(self, step: int | None = None):
        """Turns a failed write (of `step`, or of the save in flight) into
        WorkdirWriteError; after one, the manager is not used again."""
        if self._failed is not None:
            raise self._failed
        try:
            yield
        except Exception as e:  # noqa: BLE001 - any write failure stops the run, named.
            failed = self._in_flight if self._in_flight is not None else step
            self._failed = WorkdirWriteError(write_failure(
                f"saving checkpoint {failed} in {self.directory}", self.directory, e,
                committed_steps(self.directory)))
            raise self._failed from e

    def restore(self, step: int, abstract_state: Any, data_iterator: Any) -> tuple[Any, dict]:
        """Restores the checkpoint at `step`.

        `abstract_state` is a tree of jax.ShapeDtypeStruct carrying the target shardings;
        `data_iterator` (or None) is set to the saved position in place. Returns
        (state, meta). Raises CheckpointMismatchError when the saved state's tree or shapes
        differ from `abstract_state` (a different model or optimizer than the run that wrote
        it). Raises CheckpointCorruptError when a file of the checkpoint fails its checksum
        (see framework/checkpoint_integrity.py); the error names the file or the array.
        """
        step_dir = os.path.join(self.directory, str(step))
        _, record = integrity.read_meta(step_dir)
        if data_iterator is not None:
            integrity.verify_data_state(step_dir, record)
        check_structure(self.directory, step, abstract_state, record)
        items = {"state": ocp.args.StandardRestore(abstract_state),
                 "meta": ocp.args.JsonRestore()}
        if data_iterator is not None:
            items["data"] = grain.checkpoint.CheckpointRestore(data_iterator)
        restored = self.manager.restore(step, args=ocp.args.Composite(**items))
        integrity.verify_arrays(restored["state"], record, os.path.join(step_dir, "state"))
        return restored["state"], restored["meta"]

    def restore_latest(self, abstract_state: Any,
                       data_iterator: Any) -> tuple[int, Any, dict] | None:
        """Restores the newest checkpoint that reads back; returns (step, state, meta), or None
        when there is no checkpoint.

        A checkpoint whose files fail to read (truncated or corrupt) is moved aside with a
        warning and the one before it is tried. Raises CheckpointMismatchError when the
        newest checkpoint does not fit `abstract_state` (nothing is moved then).
        """
        for step in reversed(self.all_steps()):
            try:
                state, meta = self.restore(step, abstract_state, data_iterator)
            except CheckpointMismatchError:
                raise
            except Exception as e:  # noqa: BLE001 - any read failure: fall back to the previous.
                target = _move_aside(self.directory, str(step))
                log.warning("Checkpoint %s/%d could not be read (%s); moved it to %s and "
                            "trying the previous one.", self.directory, step,
                            integrity.storage_error(e), target)
                self.manager.reload()
                continue
            return step, state, meta
        return None

    def read_meta(self, step: int) -> dict:
        """Returns the `meta` item of the checkpoint at `step`."""
        return self.manager.restore(
            step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]

    def wait(self) -> None:
        """Blocks until every save in flight has been committed.

        Raises WorkdirWriteError when that save failed (a full disk, any write error).
        """
        with self._writing():
            self.manager.wait_until_finished()
        self._in_flight = None

    def close(self) -> None:
        """Waits for saves in flight and releases the manager (raises as `wait` does; after a
        write error has been raised once, closing only releases)."""
        if self._failed is not None:
            with contextlib.suppress(Exception):
                self.manager.close()
            return
        try:
            self.wait()
        finally:
            with contextlib.suppress(Exception):
                self.manager.close()


class CheckpointMismatchError(ConfigError):
    """A checkpoint's state does not fit this run's model or optimizer (message says where)."""


class WorkdirWriteError(RuntimeError):
    """A write to the workdir failed (a full disk or another write error); the message names
    the path, the free space, the checkpoints kept and the fix."""


def committed_steps(directory: str) -> list[int]:
    """Returns the committed checkpoint steps found in `directory` (WORKDIR/checkpoints)."""
    if not os.path.isdir(directory):
        return []
    return sorted(int(n) for n in os.listdir(directory) if _COMMITTED_STEP.match(n)
                  and os.path.exists(os.path.join(directory, n, "commit_success.txt")))


def write_failure(what: str, path: str, error: BaseException, kept: list[int]) -> str:
    """Returns the message for a failed write: `what` failed at `path` (the cause), the free
    space there, the checkpoints `kept` and how to resume."""
    try:
        free = f"{shutil.disk_usage(path).free / 2**20:.1f} MiB free"
    except OSError:
        free = "free space unknown"
    cause = integrity.storage_error(error)
    if len(cause) > 600:
        cause = cause[:600] + " ..."
    if kept:
        note = (f"Every earlier checkpoint is kept (newest: step {kept[-1]}); free some space "
                "(or fix the write error) and run the same command again to resume from it.")
    else:
        note = ("No checkpoint was committed yet; free some space (or fix the write error) and "
                "run again.")
    return f"{what} failed ({cause}). {path}: {free}. {note}"


_COMMITTED_STEP = re.compile(r"^\d+$")
_REQUIRED = ("commit_success.txt", "_CHECKPOINT_METADATA", "state", "meta")


def set_aside_incomplete(directory: str) -> list[str]:
    """Reports interrupted saves and sets aside step directories whose commit is incomplete.

    A `<step>.orbax-checkpoint-tmp-*` directory (a save that never committed) is reported;
    orbax deletes it. A `<step>` directory lacking any of commit_success.txt,
    _CHECKPOINT_METADATA, state/ or meta/ is moved (by process 0) to
    <directory>_incomplete/<step>-<unix time>, never deleted. Returns the names moved aside.
    """
    if not os.path.isdir(directory):
        return []
    moved = []
    for name in sorted(os.listdir(directory)):
        path = os.path.join(directory, name)
        if ".orbax-checkpoint-tmp" in name:
            log.warning("Ignoring %s: the save of step %s was interrupted before its commit; "
                        "the previous checkpoint is used.", path, name.split(".")[0])
            continue
        if not _COMMITTED_STEP.match(name) or not os.path.isdir(path):
            continue
        missing = [f for f in _REQUIRED if not os.path.exists(os.path.join(path, f))]
        if not missing:
            continue
        target = _move_aside(directory, name, sync=False)
        log.warning("Ignoring checkpoint %s: its commit is incomplete (missing %s). Moved it to "
                    "%s; the previous checkpoint is used.", path, ", ".join(missing), target)
        moved.append(name)
    if moved:
        _sync_processes("tessera_set_aside_incomplete_checkpoints")
    return moved


def _move_aside(directory: str, name: str, sync: bool = True) -> str:
    """Moves <directory>/<name> to <directory>_incomplete/<name>-<unix time> (process 0)."""
    target = os.path.join(directory + "_incomplete", f"{name}-{int(time.time())}")
    if jax.process_index() == 0:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        os.replace(os.path.join(directory, name), target)
    if sync:
        _sync_processes(f"tessera_move_aside_{name}")
    return target


def _sync_processes(name: str) -> None:
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)


def read_saved_shapes(state_dir: str) -> dict[str, tuple[int, ...]]:
    """Returns {tree path: shape} of the arrays saved in `state_dir` (a checkpoint's state).

    Raises CheckpointCorruptError with the storage's own words (the file, a CRC failure)
    when the description cannot be read.
    """
    try:
        saved = ocp.StandardCheckpointHandler().metadata(epath.Path(state_dir))
        saved = getattr(saved, "item_metadata", saved)
        return {trees.path_name(p): tuple(getattr(leaf, "shape", ()) or ())
                for p, leaf in jax.tree_util.tree_flatten_with_path(saved)[0]}
    except Exception as e:  # noqa: BLE001 - an unreadable tree description is corruption.
        raise CheckpointCorruptError(f"{state_dir}: the description of the saved arrays cannot "
                                     f"be read ({integrity.storage_error(e)}).") from e


def check_structure(directory: str, step: int, abstract_state: Any,
                    record: dict | None = None) -> None:
    """Raises CheckpointMismatchError unless checkpoint `step`'s state has the tree paths and
    shapes of `abstract_state` (a tree of jax.ShapeDtypeStruct).

    With the checkpoint's integrity `record` (checked metadata), a state/_METADATA that
    disagrees with the record is corruption: CheckpointCorruptError names the file.
    """
    path = os.path.join(directory, str(step), "state")
    wanted = {trees.path_name(p): tuple(leaf.shape)
              for p, leaf in jax.tree_util.tree_flatten_with_path(abstract_state)[0]}
    saved_shapes = read_saved_shapes(path)
    recorded = record and {k: tuple(v) for k, v in record.get("shapes", {}).items()}
    if recorded and saved_shapes != recorded:
        raise CheckpointCorruptError(
            f"{path}/_METADATA: the tree description differs from the one recorded at save "
            "(a corrupt file).")
    problems = [f"{k}: missing in the checkpoint" for k in wanted if k not in saved_shapes]
    problems += [f"{k}: only in the checkpoint" for k in saved_shapes if k not in wanted]
    problems += [f"{k}: checkpoint shape {saved_shapes[k]} but this run needs {shape}"
                 for k, shape in wanted.items() if k in saved_shapes
                 and saved_shapes[k] != shape]
    if problems:
        shown = "\n  ".join(problems[:10])
        more = f"\n  ... and {len(problems) - 10} more" if len(problems) > 10 else ""
        raise CheckpointMismatchError(
            f"checkpoint {path} does not fit this run's model/optimizer:\n  {shown}{more}\n"
            "It was written by a run with another config. Use a new --workdir (or restore the "
            "earlier config); to start from these weights, set config.init_from.path instead.")


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
