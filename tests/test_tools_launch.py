"""tools.launch: the TPU pod, SLURM and multi-GPU recipes, checked by their --dry_run output
(none of them can run on a real pod or cluster here; tools.launch_local is the tested path)."""

import os
import shlex
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAIN = ["--config", "configs/synthetic_shapes_vit.py:default", "--workdir", "gs://b/run 1",
         "--config.batch_size=256"]


def _dry_run(*args):
    out = subprocess.run([sys.executable, "-m", "tools.launch", *args, "--dry_run", "--",
                          *TRAIN], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_tpu_pod_recipe_installs_and_starts_every_host():
    out = _dry_run("tpu_pod", "--tpu", "my-pod", "--zone", "us-central2-b", "--project", "p",
                   "--repo", "https://example.org/tessera.git")
    argv = shlex.split(out)
    assert argv[:6] == ["gcloud", "compute", "tpus", "tpu-vm", "ssh", "my-pod"]
    assert "--zone=us-central2-b" in argv and "--project=p" in argv
    assert "--worker=all" in argv
    remote = argv[-1]
    assert remote.startswith("--command=")
    steps = remote[len("--command="):].split(" && ")
    assert steps[0] == ("(test -d tessera || git clone https://example.org/tessera.git "
                        "tessera)")
    assert steps[1:3] == ["cd tessera", "python -m pip install -q -e . 'jax[tpu]'"]
    assert shlex.split(steps[3]) == ["python", "-m", "tools.train", "--distributed", *TRAIN]


@pytest.mark.parametrize("per,tasks", [("gpu", 4), ("host", 1)])
def test_slurm_script_runs_one_process_per_gpu_or_per_host(per, tasks):
    script = _dry_run("slurm", "--nodes", "2", "--gpus_per_node", "4", "--per", per,
                      "--partition", "a100", "--time", "24:00:00")
    lines = script.splitlines()
    assert lines[0] == "#!/bin/bash"
    for line in ("#SBATCH --nodes=2", f"#SBATCH --ntasks-per-node={tasks}",
                 "#SBATCH --gpus-per-node=4", "#SBATCH --partition=a100",
                 "#SBATCH --time=24:00:00"):
        assert line in lines
    assert ("#SBATCH --gpus-per-task=1" in lines) == (per == "gpu")
    srun = lines[-1]
    assert shlex.split(srun) == ["srun", "--kill-on-bad-exit=1", "python", "-m",
                                 "tools.train", "--distributed", *TRAIN]
    assert subprocess.run(["bash", "-n"], input=script, text=True).returncode == 0


def test_gpu_host_recipe_and_launch_local_pins_each_process_to_its_gpu(tmp_path):
    assert shlex.split(_dry_run("gpu_host", "--gpus", "8")) == [
        "python", "-m", "tools.train", *TRAIN]
    assert shlex.split(_dry_run("gpu_host", "--gpus", "8", "--per", "gpu")) == [
        "python", "-m", "tools.launch_local", "--num_processes", "8", "--gpu_per_process",
        "--", "python", "-m", "tools.train", *TRAIN]
    # The per-GPU path really pins: each process of launch_local sees its own GPU index.
    from tools import launch_local

    log = tmp_path / "out.txt"
    with open(log, "w") as out:
        status = launch_local.launch(
            [sys.executable, "-c", "import os; print('GPU', os.environ['CUDA_VISIBLE_DEVICES'])"],
            2, timeout=60, out=out, gpu_per_process=True)
    assert status == 0
    assert sorted(open(log).read().split("\n"))[1:] == ["[0] GPU 0", "[1] GPU 1"]


def test_launch_needs_the_train_flags():
    out = subprocess.run([sys.executable, "-m", "tools.launch", "slurm", "--nodes", "2",
                          "--", "--config", "c.py"], cwd=ROOT, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 2 and "need --workdir" in out.stderr
