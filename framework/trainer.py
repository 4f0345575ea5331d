"""The one training loop: build, init or resume, train, evaluate, checkpoint, log."""

from __future__ import annotations

import dataclasses
import difflib
import errno
import functools
import json
import logging
import os
import time
from typing import Any

import jax
import ml_collections
import numpy as np
from flax import linen as nn

import framework.data  # noqa: F401  (registers the built-in datasets)
import framework.evaluators  # noqa: F401  (registers the built-in evaluators)
import framework.losses  # noqa: F401  (registers the built-in losses)
import framework.models  # noqa: F401  (registers the built-in models)
from framework import checkpoint as checkpoint_lib
from framework import config as config_lib
from framework import console, guards, optim, preemption, profiling, registry, workdir_lock
from framework import flops as flops_lib
from framework import metrics as metrics_lib
from framework import sharding as sharding_lib
from framework import train_state as state_lib
from framework.config import ConfigError
from framework.data import pipeline

log = logging.getLogger(__name__)


@dataclasses.dataclass
class Run:
    """Everything built from a config before the first step is compiled. `make_step`:
    config.train_step's factory with its config keys bound, parts -> train_step (see
    framework.train_state.train_step_fn)."""

    config: ml_collections.ConfigDict
    workdir: str
    mesh: Any
    rules: sharding_lib.Rules
    model: nn.Module
    loss_fn: Any
    evaluators: dict
    grad_accum_steps: int
    make_step: Any


def build(config: ml_collections.ConfigDict, workdir: str) -> Run:
    """Builds mesh, model, loss, train step factory and evaluators of `config`, as
    config.load_config returns it (validated); no compute yet.

    Raises ConfigError for anything the config gets wrong (unknown names or keys of its
    pieces, a mesh that does not fit the devices, a batch that does not divide) before
    anything is compiled.
    """
    if not workdir:
        raise ConfigError("--workdir: required (the directory for checkpoints and metrics).")
    mesh = sharding_lib.make_mesh(config.mesh)
    rules = sharding_lib.logical_rules(config.sharding.rules)
    sharding_lib.check_batch_size(config.batch_size, mesh)
    metrics_lib.check_wandb(config.get("wandb"))
    accum = int(config.optimizer.get("grad_accum_steps", 1) or 1)
    if accum > 1:
        if config.batch_size % accum:
            raise ConfigError(f"config.batch_size={config.batch_size} is not a multiple of "
                              f"config.optimizer.grad_accum_steps={accum}.")
        sharding_lib.check_batch_size(
            config.batch_size // accum, mesh,
            key="the micro-batch config.batch_size / config.optimizer.grad_accum_steps")
    if config.init_from.path:
        from framework import pretrained

        pretrained.check_init_from(config.init_from)
    model = registry.MODELS.build(config.model.name, config_lib.kwargs_of(config.model),
                                  "config.model")
    loss_fn = registry.LOSSES.build(config.loss.name, config_lib.kwargs_of(config.loss),
                                    "config.loss")
    step_factory = registry.TRAIN_STEPS.get(config.train_step.name, "config.train_step.name")
    step_kwargs = config_lib.kwargs_of(config.train_step)
    registry.check_kwargs(step_factory, step_kwargs, "config.train_step",
                          f"train step {config.train_step.name!r}")
    evaluators = {  # The key is the metric prefix; `name` the registry name (default: key).
        key: registry.EVALUATORS.build(
            kwargs.get("name") or key, config_lib.kwargs_of(kwargs), f"config.evaluators.{key}",
            model=model, config=config, mesh=mesh)
        for key, kwargs in config.evaluators.items()
    }
    return Run(config, workdir, mesh, rules, model, loss_fn, evaluators, accum,
               functools.partial(step_factory, **step_kwargs))


CONFIG_CHANGE = ("warn", "refuse")


def check_config_change(config: ml_collections.ConfigDict, workdir: str,
                        on_config_change: str = "warn") -> str | None:
    """Compares `config` with WORKDIR/config.json of an earlier run; writes nothing.

    Returns the unified diff (None when there is no earlier config or it is the same).
    With on_config_change="refuse" a difference raises ConfigError showing the diff;
    with "warn" it is logged.
    """
    if on_config_change not in CONFIG_CHANGE:
        raise ConfigError(f"on_config_change={on_config_change!r}: must be one of "
                          f"{', '.join(CONFIG_CHANGE)}.")
    path = os.path.join(workdir, "config.json")
    if not os.path.exists(path):
        return None
    old = recorded_config_text(path)
    text = _config_text(config)
    if old == text:
        return None
    diff = "\n".join(difflib.unified_diff(
        old.splitlines(), text.splitlines(), "previous config.json", "this run", lineterm=""))
    if on_config_change == "refuse":
        raise ConfigError(
            f"the config differs from the one saved in {path} by an earlier run, and "
            f"--on_config_change=refuse:\n{diff}\nUse a new --workdir, or "
            "--on_config_change=warn to continue this run with the new config.")
    log.warning("The config differs from the one saved in %s:\n%s", path, diff)
    return diff


def record_config(config: ml_collections.ConfigDict, workdir: str,
                  on_config_change: str = "warn") -> None:
    """Writes WORKDIR/config.json after `check_config_change`.

    An earlier, different config.json is kept as config.<N>.json (N = 1, 2, ...), never
    overwritten.
    """
    check_config_change(config, workdir, on_config_change)
    if jax.process_index() != 0:
        return
    path = os.path.join(workdir, "config.json")
    if os.path.exists(path) and not _same_text(path, _config_text(config)):
        number = 1
        while os.path.exists(os.path.join(workdir, f"config.{number}.json")):
            number += 1
        kept = os.path.join(workdir, f"config.{number}.json")
        os.replace(path, kept)
        log.warning("Kept the earlier config as %s.", kept)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(_config_text(config))
    os.replace(tmp, path)


def _config_text(config: ml_collections.ConfigDict) -> str:
    return json.dumps(config.to_dict(), indent=2, sort_keys=True, default=str)


def _same_text(path: str, text: str) -> bool:
    with open(path) as f:
        return f.read() == text


def recorded_config_text(path: str) -> str:
    """Returns the text of the recorded run config at `path` with registry names renamed
    since the run was recorded in their new form (config_lib.upgrade_names; one warning
    line when there were any), written as `record_config` writes a config."""
    with open(path) as f:
        text = f.read()
    config = ml_collections.ConfigDict(json.loads(text))
    if not config_lib.upgrade_names(config, path):
        return text
    return _config_text(config)


@dataclasses.dataclass
class Result:
    """What a run ends with: the final TrainState and the last train and eval metrics."""

    state: state_lib.TrainState
    metrics: dict[str, float]
    preempted: bool = False  # True when SIGTERM / a preemption notice stopped the run early.


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str,
                       stop_at_step: int | None = None,
                       on_config_change: str = "warn",
                       profile_steps: tuple[int, int] | None = None) -> Result:
    """Trains `config` (as config.load_config returns it: validated) in `workdir`, resuming
    from its latest checkpoint if there is one.

    With `stop_at_step`, the run checkpoints and returns after that step (a time-sliced job
    continues later from there); the schedule still spans `config.total_steps`. SIGTERM (or
    JAX's preemption notice) checkpoints after the current step and returns with
    `preempted=True`. `on_config_change` ("warn" or "refuse") says what to do when the
    workdir holds a different config.json (see `check_config_change`). `profile_steps`
    (first, last) writes a jax.profiler trace of those steps to WORKDIR/profile
    (framework.profiling.StepProfiler). Raises
    workdir_lock.WorkdirInUseError when another run holds the workdir,
    checkpoint.WorkdirWriteError when a write to the workdir fails (a full disk), and
    guards.NonFiniteError when a loss or gradient is NaN/Inf and config.on_nonfinite="stop".
    """
    started = time.perf_counter()
    run = build(config, workdir)
    if on_config_change != "warn":  # Refuse before anything starts; warnings come later.
        check_config_change(config, workdir, on_config_change)
    with state_lib.mesh_context(run):
        # The data is checked (paths, splits) before the workdir is created, and the
        # workdir is claimed (one run at a time) before anything is written into it.
        train_iter = iter(pipeline.make_train_loader(config.data, config.batch_size,
                                                     config.seed))
        check_num_classes(config)
        first_local = next(train_iter)
        os.makedirs(workdir, exist_ok=True)
        with workdir_lock.WorkdirLock(workdir):
            try:
                return _train(run, train_iter, first_local, stop_at_step or config.total_steps,
                              on_config_change, started, profile_steps)
            except OSError as e:
                if e.errno not in WRITE_ERRORS:
                    raise
                raise checkpoint_lib.WorkdirWriteError(checkpoint_lib.write_failure(
                    f"writing {e.filename or workdir}", workdir, e,
                    checkpoint_lib.committed_steps(os.path.join(workdir, "checkpoints")))) from e


# A full disk, a quota, a read-only or failing filesystem: the run stops, named (and the
# checkpoints committed so far stay as they are).
WRITE_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO)


PARAMS_FILE = "params.txt"  # The parameter table, in the workdir.


def _train(run: Run, train_iter: Any, first_local: dict, stop_at_step: int,
           on_config_change: str = "warn", started: float = 0.0,
           profile_steps: tuple[int, int] | None = None) -> Result:
    config, mesh = run.config, run.mesh
    is_main = jax.process_index() == 0
    example = sharding_lib.abstract_global_batch(first_local, mesh)
    checkpointer = checkpoint_lib.Checkpointer(
        run.workdir, config.checkpoint.max_to_keep, config.checkpoint.async_save)

    params, tx, schedule, abstract_state, state_shardings = state_lib.abstract_training(
        run.model, example, config, mesh, run.rules)
    table = optim.describe_param_groups(params, config.optimizer)
    log.info("Parameter groups:\n%s", table)

    restored = checkpointer.restore_latest(abstract_state, train_iter)
    end = min(stop_at_step, config.total_steps)
    if restored is not None and restored[0] >= end:
        checkpointer.close()
        _say_nothing_to_do(run.workdir, restored[0], end, config.total_steps)
        return Result(restored[1], {})
    if restored is not None:
        state = restored[1]
        pending = None
    else:
        state = state_lib.create_train_state(run.model, tx, example, state_shardings, config.seed)
        if config.init_from.path:
            from framework import pretrained  # Only runs that init from a checkpoint need it.

            state = pretrained.init_state_from(state, state_shardings, config.init_from, tx.init)
        pending = first_local
    # Only now, with the checkpoint (if any) known to fit, does this run claim the workdir.
    record_config(config, run.workdir, on_config_change)
    params_file = os.path.join(run.workdir, PARAMS_FILE)
    if is_main:
        with open(params_file, "w") as f:
            f.write(table + "\n")
    writer = metrics_lib.MetricWriter(run.workdir, enabled=is_main, wandb=config.get("wandb"))

    start = int(jax.device_get(state.step))
    n_params = flops_lib.count_params(abstract_state.params)
    console.banner(config, mesh, run.workdir, n_params, params_file, start, end)
    console.say("Compiling the train step ...")
    compile_start = time.perf_counter()
    compiled = state_lib.compile_train_step(run, tx, schedule, abstract_state, state_shardings,
                                            example)
    # FLOPs per step (and MFU) are measured by `python -m tools.benchmark`, not at each start.
    console.say(f"Compiled in {time.perf_counter() - compile_start:.1f} s; training.")
    writer.write(start, {"params": n_params})

    meta = checkpoint_lib.run_metadata(config.to_dict())
    progress = metrics_lib.Progress(config.total_steps, start, config.batch_size)
    stop_on_nonfinite = config.on_nonfinite == "stop"
    count_skipped = config.data.get("on_corrupt", "error") == "skip"
    window: list[dict] = []
    last: dict[str, float] = {}
    preempted = False
    step, saved = start, None
    unchecked = None  # (step, metrics) whose finiteness is checked once the next step runs.

    profiler = profiling.StepProfiler(profile_steps,
                                      os.path.join(run.workdir, profiling.PROFILE_DIR))

    def checkpoint_note() -> str:
        checkpointer.wait()  # A save in flight is of a good state; let it commit first.
        return _checkpoint_note(checkpointer)

    try:
        with preemption.PreemptionWatch() as watch:
            for step in range(start + 1, end + 1):
                local = pending if pending is not None else next(train_iter)
                pending = None
                profiler.before(step)
                state, step_metrics = compiled(state, sharding_lib.shard_batch(local, mesh))
                if profiler.after(step, step_metrics):
                    console.say(f"Profiled steps {profile_steps[0]}-{step}: trace in "
                                f"{profiler.directory} (tensorboard --logdir, or Perfetto)")
                if stop_on_nonfinite and unchecked is not None:
                    guards.raise_if_nonfinite(*unchecked, checkpoint_note)
                unchecked = (step, step_metrics)
                window.append(step_metrics)
                preempted = watch.should_stop(step) and step < end
                final = step == end or preempted
                if step % config.log_every == 0 or final:
                    last = guards.window_means(jax.device_get(window))
                    window = []
                    if count_skipped:
                        last["train/skipped_records"] = _skipped_records(train_iter, step,
                                                                         config.batch_size)
                    line = progress.update(step, last)
                    last["train/examples_per_sec"] = progress.examples_per_sec
                    writer.write(step, last)
                    if is_main:
                        print(line, flush=True)
                save = (config.checkpoint_every and step % config.checkpoint_every == 0) or final
                evaluate = ((config.eval_every and step % config.eval_every == 0)
                            or step == config.total_steps)
                if stop_on_nonfinite and (save or evaluate):
                    guards.raise_if_nonfinite(*unchecked, checkpoint_note)
                if evaluate:
                    last.update(_evaluate(run, state.eval_variables(), step, writer))
                if save:
                    checkpointer.save(step, state, train_iter, meta)
                    saved = os.path.join(checkpointer.directory, str(step))
                    console.say(f"Saving checkpoint {saved}")
                if preempted:
                    break
            if stop_on_nonfinite and unchecked is not None:
                guards.raise_if_nonfinite(*unchecked, checkpoint_note)
    finally:
        profiler.close()
        checkpointer.close()  # Saves in flight (of good states) are committed first.
        writer.close()
    reason = watch.reason if preempted else ("--stop_at_step" if end < config.total_steps
                                             else "")
    console.summary(run.workdir, step, config.total_steps, last,
                    time.perf_counter() - started, saved, reason)
    return Result(state, last, preempted)


def check_num_classes(config: ml_collections.ConfigDict) -> None:
    """Raises ConfigError when config.model.num_classes is below the train dataset's class
    count (labels past the head would train nothing), naming the value to set."""
    num_classes = config.model.get("num_classes")
    if not isinstance(num_classes, int):
        return
    spec = pipeline.build_dataset(config.data, "train")
    if num_classes < spec.num_classes:
        raise ConfigError(f"config.model.num_classes={num_classes}, but {spec.name}/"
                          f"{spec.split} has {spec.num_classes} classes; set "
                          f"--config.model.num_classes={spec.num_classes}.")


def _say_nothing_to_do(workdir: str, step: int, end: int, total_steps: int) -> None:
    if step >= total_steps:
        console.say(f"{workdir} already finished all {total_steps} steps (checkpoint {step}); "
                    f"nothing to train. Evaluate it: python -m tools.eval --workdir {workdir}; "
                    "train on: a new --workdir, or raise --config.total_steps.")
    else:
        console.say(f"{workdir} is already at step {step}, at or past --stop_at_step={end}; "
                    "nothing to train. Raise --stop_at_step (or drop it) to continue.")


def _checkpoint_note(checkpointer: checkpoint_lib.Checkpointer) -> str:
    steps = checkpointer.all_steps()
    if not steps:
        return "There is no checkpoint yet."
    return (f"The last good checkpoint, step {steps[-1]} in {checkpointer.directory}, is "
            "untouched; a restart resumes from it.")


def _skipped_records(train_iter, step: int, global_batch: int) -> float:
    """Returns the corrupt records all processes have skipped up to `step` of this run."""
    count, index = jax.process_count(), jax.process_index()
    state = train_iter.get_state()
    mine = guards.skipped_records(state, step, global_batch // count, index, count)
    if count > 1:
        from jax.experimental import multihost_utils

        mine = int(np.sum(multihost_utils.process_allgather(np.int64(mine))))
    return float(mine)


def _evaluate(run: Run, variables: dict, step: int, writer) -> dict[str, float]:
    out = {}
    for name, evaluator in run.evaluators.items():
        for metric, value in evaluator.run(variables).items():
            out[f"eval/{name}/{metric}"] = float(value)
    if out:
        writer.write(step, out)
        if jax.process_index() == 0:
            print(f"step {step}: " + ", ".join(f"{k}={v:.4g}" for k, v in out.items()),
                  flush=True)
    return out
