"""Time a config's jitted train step: step time, examples/s, FLOP/s, MFU, memory, input rate.

    python -m tools.benchmark --config FILE.py[:ARG] [--config.KEY=V ...] [--steps 10]
        [--warmup 2] [--json] [--compare] [--out_dir benchmarks] [--cpu_devices N]
        [--workdir DIR [--profile_steps A:B]]

The step is the trainer's (same model, loss, optimizer, sharding, gradient accumulation),
compiled once (timed separately) and run `--warmup` + `--steps` times on one batch from the
config's train pipeline kept on the devices; the step time is the median of the timed steps.
MFU = XLA's FLOPs per step / step time / peak FLOP/s of the devices used (framework.hardware:
a table for TPUs and GPUs, a measured matmul peak on CPU). The input pipeline's own rate is
measured separately (framework.data) so a slow pipeline shows beside a fast step.

`--forward` also times the model's evaluation forward pass. `--compare` also trains the
model's PyTorch twin (tools.twin: timm's ViT, open_clip's SigLIP, transformers' ViViT; needs
the optional extra `compare`) on the same batch and machine in a process of its own, the
two taking turns step by step so that other load on the machine slows both alike, and
reports the speed ratios and each process's own peak memory. Results go to stdout (a Markdown
line, or one JSON object with --json) and, unless `--out_dir ''`, to
OUT_DIR/<config>[_<arg>]-<platform>.json and .md with the command that produced them.

`--workdir DIR` keeps what the run can show about the step: DIR/train_step.hlo.txt (the
compiled step's optimised HLO) and, with `--profile_steps A:B`, a jax.profiler trace of our
steps A to B (counting the warm-up steps, 1-based) in DIR/profile (TensorBoard or Perfetto).

On Linux the tool first re-executes itself with glibc's malloc keeping freed memory
(`framework.process_memory.MALLOC_TUNABLES` in GLIBC_TUNABLES, inherited by the twin)
unless GLIBC_TUNABLES is set: otherwise each CPU step page-faults its temporaries in anew.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

from tools import cli


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    """Parses the command line; returns (flags, config overrides "KEY=VALUE")."""
    rest, overrides = cli.split_overrides(argv)
    parser = cli.ArgumentParser(prog="python -m tools.benchmark", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="path/to/config.py[:arg]")
    parser.add_argument("--steps", type=int, default=10, help="timed steps (median taken)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps after compile")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--compare", action="store_true",
                        help="also time the model's PyTorch twin (tools.twin; extra 'compare')")
    parser.add_argument("--forward", action="store_true",
                        help="also time the evaluation forward pass (and the twin's)")
    parser.add_argument("--input_batches", type=int, default=20,
                        help="batches read to measure the input pipeline (0 = skip)")
    parser.add_argument("--out_dir", default="benchmarks",
                        help="where to write the JSON and Markdown results ('' = nowhere)")
    parser.add_argument("--note", default="", help="free text stored with the result")
    parser.add_argument("--cpu_devices", type=int, default=0,
                        help="if > 0, run on this many virtual CPU devices")
    parser.add_argument("--workdir", default="",
                        help="where to write the optimised HLO and the profile ('' = nowhere)")
    parser.add_argument("--profile_steps", default="",
                        help="A:B traces our steps A to B (1-based, warm-up included) into "
                             "WORKDIR/profile")
    args = parser.parse_args(rest)
    if args.profile_steps and not args.workdir:
        parser.error("--profile_steps needs --workdir DIR (the trace goes to DIR/profile).")
    for name in ("steps", "warmup", "input_batches"):
        if getattr(args, name) < (1 if name == "steps" else 0):
            parser.error(f"--{name}={getattr(args, name)}: must be "
                         f"{'positive' if name == 'steps' else '>= 0'}.")
    return args, overrides


def prepare_train_step(config: Any, hlo_path: str = "",
                       forward: bool = False) -> tuple[dict[str, Callable[[], float]], dict,
                                                       dict]:
    """Builds `config`'s trainer pieces and compiles its train step (timed); with `hlo_path`,
    writes the compiled step's optimised HLO there.

    Returns (runners, info, host batch): runners["train"]() runs one step on a batch kept on
    the devices, waits for it and returns its loss; with `forward`, runners["forward"]() runs
    the model's jitted evaluation forward pass on the batch (returns 0.0); info holds
    compile_time_s, flops_per_step (XLA, the whole step over all devices, a multiply-add =
    2), params, num_devices and batch_size; the host batch is a dict of numpy arrays
    (leading dim: the global batch).
    """
    import jax

    from framework import flops as flops_lib
    from framework import sharding as sharding_lib
    from framework import step as step_lib
    from framework import train_state as state_lib
    from framework import trainer

    run = trainer.build(config, workdir="(benchmark: no workdir)")
    with state_lib.mesh_context(run):
        spec = state_lib.state_spec(run)
        example, shardings = spec.example, spec.shardings
        batch = sharding_lib.shard_batch(spec.local_batch, run.mesh)
        state = state_lib.create_train_state(run.model, spec.tx, example, shardings, config.seed)
        start = time.perf_counter()
        compiled = state_lib.compile_train_step(run, spec.tx, spec.schedule,
                                                spec.abstract_state, shardings, example)
        compile_time = time.perf_counter() - start
        step_flops = train_step_flops(run, example, compiled)
        if forward:
            infer = jax.jit(lambda s, b: step_lib.apply_model(
                run.model, s.params, s.collections, b, None, train=False)[0]).lower(
                    state, batch).compile()
    if hlo_path:
        with open(hlo_path, "w") as f:
            f.write(compiled.as_text())
    holder = {"state": state}

    def run_step() -> float:
        with state_lib.mesh_context(run):
            holder["state"], metrics = compiled(holder["state"], batch)
            return float(jax.block_until_ready(metrics)["loss"])

    def run_forward() -> float:
        with state_lib.mesh_context(run):
            jax.block_until_ready(infer(holder["state"], batch))
        return 0.0

    num_devices = int(run.mesh.devices.size)
    runners = {"train": run_step, **({"forward": run_forward} if forward else {})}
    return runners, {
        "compile_time_s": compile_time,
        "flops_per_step": step_flops,
        "params": flops_lib.count_params(spec.abstract_state.params),
        "num_devices": num_devices,
        "batch_size": int(config.batch_size),
        "step_memory_bytes": step_memory_bytes(compiled),
    }, spec.local_batch


def step_memory_bytes(compiled: Any) -> int | None:
    """Returns XLA's account of the memory one run of `compiled` needs on a device: its
    arguments and outputs (the donated ones counted once) plus its temporary buffers; None
    when the backend gives no analysis. Unlike a process's peak RSS it leaves out the
    runtime and the compiler."""
    try:
        m = compiled.memory_analysis()
    except Exception:  # noqa: BLE001  (not every backend implements it)
        return None
    if m is None:
        return None
    return int(m.argument_size_in_bytes + m.output_size_in_bytes - m.alias_size_in_bytes
               + m.temp_size_in_bytes)


def train_step_flops(run: Any, example: dict, compiled: Any) -> float | None:
    """Returns XLA's FLOPs (a multiply-add = 2) of one train step of `run` (trainer.build's
    Run) over all devices, loops counted as many times as they run.

    XLA's cost analysis counts a loop body (a layer scan, blockwise attention, the
    micro-batch scan of gradient accumulation) once and sees nothing inside a cuDNN call.
    When the step has none of these, this is the compiled step's per-device count times the
    devices; otherwise the whole-program count of an equivalent step that is only lowered:
    `flops.countable(model)` and the whole batch as one micro-batch (the sum of the
    micro-batch gradients is the full-batch gradient). `example` is the abstract
    global batch; call inside the run's mesh context. None when the backend gives no count.
    """
    import jax

    from framework import flops as flops_lib
    from framework import train_state as state_lib

    model = flops_lib.countable(run.model)
    if model is run.model and run.grad_accum_steps == 1:
        per_device = flops_lib.compiled_flops(compiled)
        return None if per_device is None else per_device * int(run.mesh.devices.size)
    built = state_lib.abstract_training(model, example, run.config, run.mesh, run.rules)
    unrolled = state_lib.train_step_fn(run, built.tx, built.schedule, model, 1)
    return flops_lib.compiled_flops(jax.jit(unrolled).lower(built.abstract_state, example))


def time_steps(runners: dict[str, Callable[[], float]], steps: int,
               warmup: int) -> dict[str, dict]:
    """Runs every runner `warmup` + `steps` times, taking turns step by step (so other load
    on the machine hits each alike). Returns {name: {"step_time_s" (median),
    "step_time_best_s", "step_times_s", "final_loss"}} over the timed steps."""
    times: dict[str, list[float]] = {name: [] for name in runners}
    losses: dict[str, float] = {}
    for i in range(warmup + steps):
        for name, run_step in runners.items():
            start = time.perf_counter()
            losses[name] = run_step()
            if i >= warmup:
                times[name].append(time.perf_counter() - start)
    return {name: {"step_time_s": statistics.median(t), "step_time_best_s": min(t),
                   "step_times_s": t, "final_loss": losses[name]} for name, t in times.items()}


def input_pipeline_rate(config: Any, num_batches: int) -> dict | None:
    """Returns framework.data.benchmark.measure_input_pipeline's result for the train
    pipeline ({"examples_per_sec", ...}) over `num_batches` batches, or None when
    `num_batches` is 0."""
    if not num_batches:
        return None
    from framework.data import benchmark as data_benchmark

    return data_benchmark.measure_input_pipeline(config.data, config.batch_size,
                                                 num_batches=num_batches, seed=config.seed)


def profiled(run_step: Callable[[], float], profiler: Any) -> Callable[[], float]:
    """Returns run_step counting its calls (1-based), traced by `profiler`
    (framework.profiling.StepProfiler) at the steps it names."""
    count = [0]

    def step() -> float:
        count[0] += 1
        profiler.before(count[0])
        loss = run_step()  # run_step waits for the step to finish.
        profiler.after(count[0])
        return loss

    return step


def benchmark(config: Any, steps: int = 10, warmup: int = 2, input_batches: int = 20,
              compare: bool = False, workdir: str = "",
              profile_steps: tuple[int, int] | None = None, forward: bool = False) -> dict:
    """Benchmarks `config`'s train step; returns the result dict (see the module docstring).

    With `workdir`, the optimised HLO of the step goes to WORKDIR/train_step.hlo.txt and the
    steps `profile_steps` (first, last; 1-based, warm-up included) are traced to
    WORKDIR/profile.

    Keys: step_time_s (median), step_time_best_s, step_times_s, examples_per_sec,
    flops_per_step, flops_per_sec, mfu, mfu_best_step (from the fastest step), peak_flops,
    peak_flops_source, device, compile_time_s, peak_memory_bytes, peak_memory_source,
    peak_memory_before_steps_bytes (the peak after setup and compiling, before the first
    step), step_memory_bytes (XLA's memory analysis of the compiled step: state, batch,
    outputs and temporaries), input_examples_per_sec, params, batch_size, num_devices,
    load_average_1min (before, after: other processes sharing the machine). With
    `forward`, also forward_time_s (the median evaluation forward pass). With `compare`,
    "peer": the PyTorch twin's numbers (tools.twin: library, params, versions, step_time_s,
    ..., its process's peak_memory_bytes, forward_time_s) and speedup_vs_peer (its median
    step time / ours; forward_speedup_vs_peer likewise); the two take turns step by step,
    and our peak memory is then our own process's (the twin runs in another).
    """
    import jax

    from framework import flops as flops_lib
    from framework import hardware, profiling

    load_before = os.getloadavg()[0]
    if workdir:
        os.makedirs(workdir, exist_ok=True)
    ours, result, local_batch = prepare_train_step(
        config, os.path.join(workdir, "train_step.hlo.txt") if workdir else "", forward)
    profiler = profiling.StepProfiler(profile_steps, os.path.join(workdir, profiling.PROFILE_DIR))
    runners = {"tessera": profiled(ours["train"], profiler)}
    peer = None
    if compare:
        from tools import twin

        peer = twin.TwinProcess(config, local_batch)
        runners[peer.library] = lambda: peer.step("train")
    # The peak before any step: the runtime, the data, the state and the compiler's.
    setup_peak = hardware.peak_memory_bytes(jax.devices()[0])[0]
    try:
        timed = time_steps(runners, steps, warmup)
        if forward:
            passes = {"tessera": ours["forward"]}
            if peer:
                passes[peer.library] = lambda: peer.step("forward")
            forward_timed = time_steps(passes, steps, warmup)
        peer_info = peer.finish() if peer else None
    finally:
        profiler.close()
        if peer:
            peer.close()
    result.update(timed["tessera"])
    result["examples_per_sec"] = config.batch_size / result["step_time_s"]
    device = jax.devices()[0]
    peak, source = hardware.peak_flops(device)
    if device.platform != "cpu":
        peak *= result["num_devices"]  # Table peaks are per device; the step uses them all.
    flops = result["flops_per_step"] or 0.0
    result.update(
        device=hardware.describe(device),
        platform=device.platform,
        peak_flops=peak,
        peak_flops_source=source,
        flops_per_sec=flops / result["step_time_s"],
        mfu=flops_lib.mfu(flops, result["step_time_s"], peak),
        mfu_best_step=flops_lib.mfu(flops, result["step_time_best_s"], peak),
    )
    if forward:
        result["forward_time_s"] = forward_timed["tessera"]["step_time_s"]
    result["peak_memory_bytes"], result["peak_memory_source"] = hardware.peak_memory_bytes(device)
    result["peak_memory_before_steps_bytes"] = setup_peak
    rate = input_pipeline_rate(config, input_batches)
    result["input_examples_per_sec"] = None if rate is None else rate["examples_per_sec"]
    if peer:
        info = {"library": peer.library, **peer_info, **timed[peer.library]}
        info["examples_per_sec"] = config.batch_size / info["step_time_s"]
        result["peer"] = info
        result["speedup_vs_peer"] = info["step_time_s"] / result["step_time_s"]
        if forward:
            info["forward_time_s"] = forward_timed[peer.library]["step_time_s"]
            result["forward_speedup_vs_peer"] = info["forward_time_s"] / result["forward_time_s"]
    # Other processes on the machine slow both sides; the 1-minute load average shows them.
    result["load_average_1min"] = [load_before, os.getloadavg()[0]]
    return result


def markdown_line(spec: str, result: dict) -> str:
    """Returns one Markdown table row for `result` (see MARKDOWN_HEADER)."""
    cells = [
        f"`{spec}`", result["device"], str(result["batch_size"]),
        f"{result['step_time_s'] * 1e3:.1f}", f"{result['examples_per_sec']:.2f}",
        f"{result['flops_per_sec'] / 1e9:.1f}", f"{result['peak_flops'] / 1e9:.1f}",
        f"{100 * result['mfu']:.1f}%", f"{100 * result['mfu_best_step']:.1f}%",
        f"{result['compile_time_s']:.1f}",
        f"{result['peak_memory_bytes'] / 2**30:.2f}",
        "-" if result["input_examples_per_sec"] is None
        else f"{result['input_examples_per_sec']:.0f}",
    ]
    return "| " + " | ".join(cells) + " |"


MARKDOWN_HEADER = (
    "| config | device | batch | step ms | examples/s | GFLOP/s | peak GFLOP/s | MFU "
    "| MFU best step | compile s | peak mem GiB | input examples/s |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|")


def comparison_table(result: dict) -> str:
    """Returns the Markdown side-by-side table of a `--compare` result (rows: train step,
    forward pass when timed, peak memory, params; a ratio > 1 means Tessera is better)."""
    peer = result["peer"]
    name = peer["library"]
    rows = [f"| | Tessera | {name} | Tessera vs {name} |", "|---|---|---|---|",
            f"| train step ms (median) | {result['step_time_s'] * 1e3:.1f} | "
            f"{peer['step_time_s'] * 1e3:.1f} | {result['speedup_vs_peer']:.2f}x speed |"]
    if "forward_time_s" in peer:
        rows.append(f"| forward ms (median) | {result['forward_time_s'] * 1e3:.1f} | "
                    f"{peer['forward_time_s'] * 1e3:.1f} | "
                    f"{result['forward_speedup_vs_peer']:.2f}x speed |")
    ours_mem, their_mem = result["peak_memory_bytes"], peer["peak_memory_bytes"]
    rows.append(f"| peak memory GiB (own process's peak RSS) | {ours_mem / 2**30:.2f} | "
                f"{their_mem / 2**30:.2f} | {name} / Tessera = {their_mem / ours_mem:.2f} |")
    if peer.get("peak_memory_before_steps_bytes"):
        rows.append(f"| peak memory GiB before the first step (setup, compile) | "
                    f"{result['peak_memory_before_steps_bytes'] / 2**30:.2f} | "
                    f"{peer['peak_memory_before_steps_bytes'] / 2**30:.2f} | |")
    if result.get("step_memory_bytes"):
        rows.append(f"| our step's own memory GiB (XLA memory analysis) | "
                    f"{result['step_memory_bytes'] / 2**30:.2f} | | |")
    rows.append(f"| params | {result['params']:,} | {peer['params']:,} | |")
    return "\n".join(rows)


def write_results(out_dir: str, spec: str, result: dict, command: str) -> list[str]:
    """Writes OUT_DIR/<name>.json (the result + command) and <name>.md; returns the paths."""
    from framework import config as config_lib

    path, arg = config_lib.split_spec(spec)
    name = os.path.splitext(os.path.basename(path))[0]
    if arg:
        name += "_" + "".join(c if c.isalnum() else "-" for c in arg)
    name += f"-{result['platform']}"
    os.makedirs(out_dir, exist_ok=True)
    json_path = os.path.join(out_dir, name + ".json")
    md_path = os.path.join(out_dir, name + ".md")
    record = {"command": command, "config": spec, **result}
    with open(json_path, "w") as f:
        json.dump(record, f, indent=2)
        f.write("\n")
    with open(md_path, "w") as f:
        f.write(f"Produced by:\n\n    {command}\n\n")
        if result.get("note"):
            f.write(f"Note: {result['note']}\n\n")
        before, after = result["load_average_1min"]
        f.write(f"Machine load (1-minute load average) before / after: {before:.1f} / "
                f"{after:.1f} on {os.cpu_count()} cores.\n\n")
        f.write(MARKDOWN_HEADER + "\n" + markdown_line(spec, result) + "\n")
        if "peer" in result:
            f.write("\n" + comparison_table(result) + "\n")
    return [json_path, md_path]


def main(argv: list[str] | None = None) -> int:
    """Runs the benchmark from the command line; returns the exit status."""
    argv = sys.argv[1:] if argv is None else argv
    args, overrides = parse_args(argv)
    if args.cpu_devices:
        cli.use_cpu_devices(args.cpu_devices)

    from framework import profiling
    from framework.config import ConfigError

    profile_steps = profiling.parse_steps(args.profile_steps)
    if profile_steps and profile_steps[1] > args.warmup + args.steps:
        raise ConfigError(f"--profile_steps={args.profile_steps}: the run has only "
                          f"{args.warmup + args.steps} steps (--warmup + --steps).")
    config = cli.load_config(args.config, overrides)
    result = benchmark(config, args.steps, args.warmup, args.input_batches, args.compare,
                       args.workdir, profile_steps, args.forward)
    result["note"] = args.note
    command = "python -m tools.benchmark " + " ".join(shlex.quote(a) for a in argv)
    if args.out_dir:
        written = write_results(args.out_dir, args.config, result, command)
        print("Wrote " + ", ".join(written), file=sys.stderr)
    if args.json:
        print(json.dumps(result))
    else:
        print(MARKDOWN_HEADER + "\n" + markdown_line(args.config, result))
        if "peer" in result:
            print("\n" + comparison_table(result))
    return 0


if __name__ == "__main__":
    from framework import process_memory

    process_memory.reexec_keeping_freed_memory()
    cli.exit_on_config_error(main)
