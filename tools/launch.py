"""Launch recipes for real clusters: a TPU VM pod, SLURM, a multi-GPU host.

    python -m tools.launch tpu_pod --tpu NAME --zone ZONE [--project P] [--repo URL] \\
        [--dry_run] -- --config FILE.py[:ARG] --workdir gs://BUCKET/DIR [--config.KEY=V ...]
    python -m tools.launch slurm --nodes N [--gpus_per_node G] [--per gpu|host] \\
        [--partition P] [--time HH:MM:SS] [--dry_run] -- <tools.train flags>
    python -m tools.launch gpu_host --gpus G [--per host|gpu] [--dry_run] -- <tools.train flags>

Everything after `--` goes to `python -m tools.train` unchanged. `--dry_run` prints exactly
what would run (the command, or the sbatch script) and runs nothing.

- tpu_pod: one `gcloud compute tpus tpu-vm ssh --worker=all --command=...` that, on every
  host, fetches the code (`--repo`, default: skip and use the copy in `--remote_dir`),
  installs it and starts `tools.train --distributed` (JAX finds the pod's hosts itself).
- slurm: an sbatch script whose `srun` starts one process per host (each sees all its GPUs)
  or per GPU; each process runs `tools.train --distributed` (JAX reads SLURM's variables).
- gpu_host: one process driving all GPUs of this machine (`--per host`, the default), or
  one per GPU through tools.launch_local (127.0.0.1), each pinned to its GPU with
  CUDA_VISIBLE_DEVICES (`--per gpu`).

None of these can be tried on a real pod or cluster from the machine the tests run on; what
the tests check is the generated text. The tested multi-process path is tools.launch_local.
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys

TRAIN = ["python", "-m", "tools.train"]


def tpu_pod_command(train_args: list[str], tpu: str, zone: str, project: str = "",
                    repo: str = "", remote_dir: str = "tessera") -> list[str]:
    """Returns the gcloud command (argv) that installs and starts training on every host."""
    steps = []
    if repo:
        steps.append(f"(test -d {shlex.quote(remote_dir)} || git clone {shlex.quote(repo)} "
                     f"{shlex.quote(remote_dir)})")
    steps += [f"cd {shlex.quote(remote_dir)}",
              "python -m pip install -q -e . 'jax[tpu]'",
              shlex.join(TRAIN + ["--distributed"] + train_args)]
    command = ["gcloud", "compute", "tpus", "tpu-vm", "ssh", tpu, f"--zone={zone}"]
    if project:
        command.append(f"--project={project}")
    return command + ["--worker=all", f"--command={' && '.join(steps)}"]


def slurm_script(train_args: list[str], nodes: int, gpus_per_node: int, per: str = "gpu",
                 partition: str = "", time_limit: str = "", job_name: str = "tessera") -> str:
    """Returns an sbatch script: `srun` starts one tools.train per GPU or per host."""
    tasks = gpus_per_node if per == "gpu" else 1
    lines = ["#!/bin/bash", f"#SBATCH --job-name={job_name}", f"#SBATCH --nodes={nodes}",
             f"#SBATCH --ntasks-per-node={tasks}", f"#SBATCH --gpus-per-node={gpus_per_node}"]
    if per == "gpu":
        lines.append("#SBATCH --gpus-per-task=1")
    if partition:
        lines.append(f"#SBATCH --partition={partition}")
    if time_limit:
        lines.append(f"#SBATCH --time={time_limit}")
    lines += ["#SBATCH --output=%x-%j.out", "set -euo pipefail",
              "# JAX reads the coordinator, process count and index from SLURM's variables.",
              "srun --kill-on-bad-exit=1 " + shlex.join(TRAIN + ["--distributed"] + train_args)]
    return "\n".join(lines) + "\n"


def gpu_host_command(train_args: list[str], gpus: int, per: str = "host") -> str:
    """Returns the shell command for this host: one process seeing all `gpus` GPUs (per
    "host", what JAX prefers on one machine) or one process per GPU (per "gpu", through
    tools.launch_local, each process pinned to its GPU)."""
    if per == "host":
        return shlex.join(TRAIN + train_args)
    return shlex.join(["python", "-m", "tools.launch_local", "--num_processes", str(gpus),
                       "--gpu_per_process", "--"] + TRAIN + train_args)


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    """Returns (the launcher's flags, the tools.train arguments after `--`)."""
    if "--" not in argv:
        raise SystemExit("usage: python -m tools.launch {tpu_pod,slurm,gpu_host} [flags] -- "
                         "<tools.train flags>  (see --help)")
    split = argv.index("--")
    parser = argparse.ArgumentParser(prog="python -m tools.launch", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    kinds = parser.add_subparsers(dest="kind", required=True)
    tpu = kinds.add_parser("tpu_pod")
    tpu.add_argument("--tpu", required=True, help="TPU VM name")
    tpu.add_argument("--zone", required=True)
    tpu.add_argument("--project", default="")
    tpu.add_argument("--repo", default="", help="git URL to clone on each host (if missing)")
    tpu.add_argument("--remote_dir", default="tessera", help="the code's folder on each host")
    slurm = kinds.add_parser("slurm")
    slurm.add_argument("--nodes", type=int, required=True)
    slurm.add_argument("--gpus_per_node", type=int, default=8)
    slurm.add_argument("--per", choices=("gpu", "host"), default="gpu",
                       help="one process per GPU or per host")
    slurm.add_argument("--partition", default="")
    slurm.add_argument("--time", default="", help="time limit, e.g. 24:00:00")
    host = kinds.add_parser("gpu_host")
    host.add_argument("--gpus", type=int, required=True)
    host.add_argument("--per", choices=("host", "gpu"), default="host",
                      help="one process for all GPUs, or one per GPU")
    for sub in (tpu, slurm, host):
        sub.add_argument("--dry_run", action="store_true", help="print what would run")
    args = parser.parse_args(argv[:split])
    train_args = argv[split + 1:]
    if not any(a == "--workdir" or a.startswith("--workdir=") for a in train_args):
        parser.error("the tools.train flags after `--` need --workdir (and --config).")
    for name in ("nodes", "gpus_per_node", "gpus"):
        if getattr(args, name, 1) < 1:
            parser.error(f"--{name} must be >= 1.")
    return args, train_args


def main(argv: list[str] | None = None) -> int:
    """Prints (--dry_run) or runs the recipe; returns the exit status."""
    args, train_args = parse_args(list(sys.argv[1:] if argv is None else argv))
    if args.kind == "tpu_pod":
        command = tpu_pod_command(train_args, args.tpu, args.zone, args.project, args.repo,
                                  args.remote_dir)
        if args.dry_run:
            print(shlex.join(command))
            return 0
        return subprocess.call(command)
    if args.kind == "slurm":
        script = slurm_script(train_args, args.nodes, args.gpus_per_node, args.per,
                              args.partition, args.time)
        if args.dry_run:
            print(script, end="")
            return 0
        return subprocess.run(["sbatch"], input=script, text=True).returncode
    command = gpu_host_command(train_args, args.gpus, args.per)
    if args.dry_run:
        print(command)
        return 0
    return subprocess.call(shlex.split(command))


if __name__ == "__main__":
    sys.exit(main())
