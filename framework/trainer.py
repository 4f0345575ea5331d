"""The one training loop: build, init or resume, train, evaluate, checkpoint, log."""

from __future__ import annotations

import dataclasses
import difflib
import json
import logging
import os
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
from framework import flops as flops_lib
from framework import metrics as metrics_lib
from framework import optim, registry
from framework import sharding as sharding_lib
from framework import step as step_lib
from framework import train_state as state_lib
from framework.data import pipeline
from framework.registry import ConfigError

log = logging.getLogger(__name__)


@dataclasses.dataclass
class Run:
    """Everything built from a config before the first step is compiled."""

    config: ml_collections.ConfigDict
    workdir: str
    mesh: Any
    rules: sharding_lib.Rules
    model: nn.Module
    loss_fn: Any
    evaluators: dict
    grad_accum_steps: int


def build(config: ml_collections.ConfigDict, workdir: str) -> Run:
    """Validates `config` and builds mesh, model, loss and evaluators; no compute yet.

    Raises ConfigError for anything the config gets wrong (unknown keys or names, a mesh that
    does not fit the devices, a batch that does not divide) before anything is compiled.
    """
    if not workdir:
        raise ConfigError("--workdir: required (the directory for checkpoints and metrics).")
    config_lib.import_project(config)
    config_lib.validate(config)
    mesh = sharding_lib.make_mesh(config.mesh)
    rules = sharding_lib.logical_rules(config.sharding.rules)
    sharding_lib.check_batch_size(config.batch_size, mesh)
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
    evaluators = {
        name: registry.EVALUATORS.build(
            name, config_lib.kwargs_of(kwargs, drop=()), f"config.evaluators.{name}",
            model=model, config=config, mesh=mesh)
        for name, kwargs in config.evaluators.items()
    }
    return Run(config, workdir, mesh, rules, model, loss_fn, evaluators, accum)


def record_config(config: ml_collections.ConfigDict, workdir: str) -> None:
    """Writes WORKDIR/config.json; warns with a diff when it differs from an earlier run's."""
    path = os.path.join(workdir, "config.json")
    text = json.dumps(config.to_dict(), indent=2, sort_keys=True, default=str)
    if os.path.exists(path):
        with open(path) as f:
            old = f.read()
        if old != text:
            diff = "\n".join(difflib.unified_diff(
                old.splitlines(), text.splitlines(), "previous config.json", "this run",
                lineterm=""))
            log.warning("The config differs from the one saved in %s:\n%s", path, diff)
    if jax.process_index() == 0:
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, path)


@dataclasses.dataclass
class Result:
    """What a run ends with: the final TrainState and the last train and eval metrics."""

    state: state_lib.TrainState
    metrics: dict[str, float]


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str,
                       stop_at_step: int | None = None) -> Result:
    """Trains `config` in `workdir`, resuming from its latest checkpoint if there is one.

    With `stop_at_step`, the run checkpoints and returns after that step (a time-sliced job
    continues later from there); the schedule still spans `config.total_steps`.
    """
    run = build(config, workdir)
    os.makedirs(workdir, exist_ok=True)
    record_config(config, workdir)
    with jax.set_mesh(run.mesh), nn.logical_axis_rules(sharding_lib.activation_rules(run.rules)):
        return _train(run, stop_at_step or config.total_steps)


def _train(run: Run, stop_at_step: int) -> Result:
    config, mesh = run.config, run.mesh
    is_main = jax.process_index() == 0
    writer = metrics_lib.MetricWriter(run.workdir, enabled=is_main)
    checkpointer = checkpoint_lib.Checkpointer(
        run.workdir, config.checkpoint.max_to_keep, config.checkpoint.async_save)

    train_iter = iter(pipeline.make_train_loader(config.data, config.batch_size, config.seed))
    first_local = next(train_iter)
    example = sharding_lib.abstract_global_batch(first_local, mesh)

    boxed = state_lib.abstract_params(run.model, example)
    tx, schedule = optim.make_optimizer(config.optimizer, config.schedule, config.total_steps,
                                        flops_lib.unbox(boxed))
    abstract_state, state_shardings = state_lib.abstract_state_and_shardings(
        boxed, tx, mesh, run.rules)
    if is_main:
        log.info("Parameter groups:\n%s",
                 optim.describe_param_groups(flops_lib.unbox(boxed), config.optimizer))

    latest = checkpointer.latest_step()
    if latest is not None:
        log.info("Resuming from %s/%d", checkpointer.directory, latest)
        state, _ = checkpointer.restore(latest, abstract_state, train_iter)
        pending = None
    else:
        state = state_lib.create_train_state(run.model, tx, example, state_shardings, config.seed)
        if config.init_from.path:
            from framework import pretrained  # Only runs that init from a checkpoint need it.

            state = pretrained.init_state_from(state, state_shardings, config.init_from, tx.init)
        pending = first_local

    train_step = step_lib.make_train_step(run.model, run.loss_fn, tx, schedule,
                                          run.grad_accum_steps)
    batch_shardings = {k: v.sharding for k, v in example.items()}
    compiled = jax.jit(
        train_step,
        in_shardings=(state_shardings, batch_shardings),
        out_shardings=(state_shardings, None),
        donate_argnums=(0,),
    ).lower(abstract_state, example).compile()

    start = int(jax.device_get(state.step))
    n_params = flops_lib.count_params(abstract_state.params)
    step_flops = flops_lib.compiled_flops(compiled)
    log.info("Model: %s parameters; %.3g FLOPs per train step (XLA, a multiply-add = 2).",
             f"{n_params:,}", step_flops or float("nan"))
    writer.write(start, {"params": n_params, "train/flops_per_step": step_flops or 0.0})

    meta = checkpoint_lib.run_metadata(config.to_dict())
    progress = metrics_lib.Progress(config.total_steps, start, config.batch_size)
    window: list[dict] = []
    last: dict[str, float] = {}
    end = min(stop_at_step, config.total_steps)
    for step in range(start + 1, end + 1):
        local = pending if pending is not None else next(train_iter)
        pending = None
        state, step_metrics = compiled(state, sharding_lib.shard_batch(local, mesh))
        window.append(step_metrics)
        final = step == end
        if step % config.log_every == 0 or final:
            last = _mean_metrics(jax.device_get(window))
            window = []
            line = progress.update(step, last)
            last["train/examples_per_sec"] = progress.examples_per_sec
            writer.write(step, last)
            if is_main:
                print(line, flush=True)
        if (config.eval_every and step % config.eval_every == 0) or step == config.total_steps:
            last.update(_evaluate(run, state.params, step, writer))
        if (config.checkpoint_every and step % config.checkpoint_every == 0) or final:
            checkpointer.save(step, state, train_iter, meta)
    checkpointer.close()
    writer.close()
    return Result(state, last)


def _mean_metrics(window: list[dict]) -> dict[str, float]:
    return {f"train/{k}": float(np.mean([m[k] for m in window])) for k in window[0]}


def _evaluate(run: Run, params, step: int, writer) -> dict[str, float]:
    out = {}
    for name, evaluator in run.evaluators.items():
        for metric, value in evaluator.run(params).items():
            out[f"eval/{name}/{metric}"] = float(value)
    if out:
        writer.write(step, out)
        if jax.process_index() == 0:
            print(f"step {step}: " + ", ".join(f"{k}={v:.4g}" for k, v in out.items()),
                  flush=True)
    return out
