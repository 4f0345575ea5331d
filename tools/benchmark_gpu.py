"""GPU train-step benchmark of ViT-B/16, SigLIP B/16 and ViViT-B/16x2 FE (`benchmarks/gpu.sh`).

    benchmarks/gpu.sh [--steps 10] [--warmup 3] [--out benchmarks/gpu.json]

Each model trains in bfloat16 with cuDNN's fused attention (`attention_implementation=
'cudnn'`), in a process of its own (so that each peak memory is that model's own, from the
device allocator), through tools.benchmark: the trainer's step, compiled once, then
`--warmup` + `--steps` steps on one batch kept on the GPU. The compiled step's HLO must hold
cuDNN's fused attention custom call (`__cudnn$fmha...`), or the model's entry fails. Prints
one JSON object {model: {step_time_s, examples_per_sec, mfu, peak_memory_bytes,
cudnn_attention_calls, ...}} and writes it to `--out`. Refuses with one `Error:` line and
exit status 2 when JAX sees no GPU. About 1 minute per model on an H100-class GPU.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile

# name: (config, batch size, overrides). The batches fit a 40 GB GPU without remat.
MODELS = {
    "vit_b16": ("benchmarks/configs/synthetic_shapes_vit_b16.py", 128,
                ["model.dtype=bfloat16", "model.attention_implementation=cudnn"]),
    "siglip_b16": ("benchmarks/configs/synthetic_siglip_b16.py", 256,
                   ["model.image.dtype=bfloat16", "model.text.dtype=bfloat16",
                    "model.image.attention_implementation=cudnn",
                    "model.text.attention_implementation=cudnn", "loss.chunked=True"]),
    "vivit_b16x2_fe": ("benchmarks/configs/synthetic_vivit_b16x2.py:FE", 16,
                       ["model.dtype=bfloat16", "model.attention_implementation=cudnn"]),
}
CUDNN_ATTENTION = re.compile(r'custom_call_target="__cudnn\$fmha[^"]*"')


def gpu_or_error() -> str:
    """Returns the GPU's name; raises SystemExit(2) after one `Error:` line without one."""
    import jax

    try:
        devices = jax.devices("gpu")
    except RuntimeError:
        devices = []
    if not devices:
        platforms = sorted({d.platform for d in jax.devices()})
        print(f"Error: benchmarks/gpu.sh needs an NVIDIA GPU, but JAX sees only "
              f"{', '.join(platforms)} devices; run it on a GPU machine with jax[cuda] "
              "installed (nothing was run).", file=sys.stderr)
        raise SystemExit(2)
    return devices[0].device_kind


def run_one(name: str, steps: int, warmup: int) -> dict:
    """Benchmarks MODELS[name] in this process; returns tools.benchmark's result plus
    cudnn_attention_calls (the fused attention custom calls in the compiled step)."""
    from tools import benchmark, cli

    spec, batch, overrides = MODELS[name]
    data = [f"data.train.num_train={batch}"]  # One batch of distinct examples.
    config = cli.load_config(spec, [f"batch_size={batch}", *overrides, *data])
    with tempfile.TemporaryDirectory() as workdir:
        result = benchmark.benchmark(config, steps, warmup, input_batches=0, workdir=workdir)
        with open(os.path.join(workdir, "train_step.hlo.txt")) as f:
            calls = len(CUDNN_ATTENTION.findall(f.read()))
    if not calls:
        raise RuntimeError(f"{name}: the compiled step holds no cuDNN fused attention call; "
                           "the cuDNN path was not taken.")
    keep = ("step_time_s", "examples_per_sec", "mfu", "flops_per_step", "peak_flops",
            "peak_memory_bytes", "peak_memory_source", "compile_time_s", "batch_size",
            "params", "device")
    return {"config": spec, **{k: result[k] for k in keep}, "dtype": "bfloat16",
            "cudnn_attention_calls": calls}


def main(argv: list[str] | None = None) -> int:
    """Runs every model in its own process (or one with --model); returns the exit status."""
    parser = argparse.ArgumentParser(prog="benchmarks/gpu.sh", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--out", default="benchmarks/gpu.json", help="'' = print only")
    parser.add_argument("--model", choices=sorted(MODELS), help="run only this one, here")
    args = parser.parse_args(argv)
    kind = gpu_or_error()
    if args.model:
        print(json.dumps(run_one(args.model, args.steps, args.warmup)))
        return 0
    results, failed = {"gpu": kind}, False
    for name in MODELS:
        out = subprocess.run(
            [sys.executable, "-m", "tools.benchmark_gpu", "--model", name, "--steps",
             str(args.steps), "--warmup", str(args.warmup)], capture_output=True, text=True)
        lines = out.stdout.strip().splitlines()
        if out.returncode == 0 and lines:
            results[name] = json.loads(lines[-1])
        else:
            failed = True
            errors = [x for x in out.stderr.splitlines() if x.strip()]
            results[name] = {"error": errors[-1] if errors else f"exit {out.returncode}"}
        print(f"{name}: {json.dumps(results[name])}", file=sys.stderr, flush=True)
    text = json.dumps(results, indent=2)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
