"""What a training run tells the person at the terminal: a start banner, compile and save
notes, and an end summary. Process 0 prints them to stdout; library logs go through `logging`
and are hidden by the tools unless `--verbosity` asks for them."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import jax
import ml_collections

from framework.data.spec import resolve_data_dir


def say(text: str) -> None:
    """Prints `text` on process 0 (the other processes stay quiet)."""
    if jax.process_index() == 0:
        print(text, flush=True)


def data_location(data_config: Any, which: str) -> str:
    """Returns where `config.data.<which>` is read from: the dataset's name and its folder
    (relative paths and built-in synthetic sets resolve under config.data.data_dir, else
    $TESSERA_DATA_DIR, else ~/.cache/tessera/datasets)."""
    node = data_config.get(which) or {}
    name = node.get("name", "")
    root = resolve_data_dir(data_config.get("data_dir"))
    if node.get("path"):
        return f"{name} {os.path.join(root, os.path.expanduser(node['path']))}"
    if node.get("tfds_data_dir"):
        return f"{name} {node.get('tfds_name', '')} in {node['tfds_data_dir']}"
    return f"{name} under {root}"


def banner(config: ml_collections.ConfigDict, mesh: Any, workdir: str, n_params: int,
           params_file: str, start: int, end: int) -> None:
    """Prints the start banner: model and schedule, devices and mesh, data, parameters,
    workdir, and whether the run starts fresh or resumes from step `start` (towards `end`)."""
    devices = jax.devices()
    shape = " ".join(f"{axis}={size}" for axis, size in mesh.shape.items())
    processes = jax.process_count()
    train, evaluate = (data_location(config.data, w) for w in ("train", "eval"))
    data = train if train == evaluate or not config.evaluators else f"{train}; eval {evaluate}"
    state = f"resumed from step {start}" if start else "fresh start"
    lines = [
        f"Model    {config.model.name}: {n_params:,} parameters (table: {params_file})",
        f"Train    {config.total_steps} steps at batch {config.batch_size}"
        + (f", stopping after step {end}" if end < config.total_steps else ""),
        f"Devices  {len(devices)} x {devices[0].platform} in {processes} "
        f"process{'es' if processes > 1 else ''}; mesh {shape}, "
        f"rules {config.sharding.rules}",
        f"Data     {data}",
        f"Workdir  {workdir} ({state})",
    ]
    say("\n".join(lines))


def summary(workdir: str, step: int, total_steps: int, metrics: Mapping[str, float],
            seconds: float, checkpoint_dir: str | None, reason: str = "") -> None:
    """Prints the end summary: why the run ended (`reason`: "" = finished), the final loss
    and eval metrics, wall time, and where the checkpoint and the curves are."""
    shown = {k: v for k, v in metrics.items()
             if k == "train/loss" or (k.startswith("eval/") and not k.endswith("/count"))}
    minutes, secs = divmod(int(round(seconds)), 60)
    head = (f"Stopped after step {step} of {total_steps} ({reason}); run the same command "
            "again to continue." if reason else f"Finished {total_steps} steps.")
    lines = [f"{head} Wall time {minutes}:{secs:02d}."]
    if shown:
        lines.append("Final    " + ", ".join(f"{k}={v:.4g}" for k, v in shown.items()))
    if checkpoint_dir:
        lines.append(f"Saved    {checkpoint_dir}")
    lines.append(f"Curves   {os.path.join(workdir, 'metrics.jsonl')}, "
                 f"{os.path.join(workdir, 'tensorboard')} "
                 f"(plot: python -m tools.plot {workdir})")
    say("\n".join(lines))
