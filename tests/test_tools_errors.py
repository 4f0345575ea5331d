"""Every tool given bad input says so in one `Error:` line on stderr, exits 2, prints no
traceback and creates nothing. The absl tools (train, benchmark_data) run in subprocesses,
the argparse tools in this process."""

import importlib
import os
import subprocess
import sys

import pytest

from tools import cli

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO = "configs/synthetic_shapes_vit.py:test"
MISSING = "/nonexistent/tessera"


def assert_one_error_line(stderr: str, message: str) -> None:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), stderr[-3000:]
    assert message in lines[0], lines[0]


@pytest.mark.parametrize("tool,args,message", [
    ("eval", ["--workdir", MISSING], f"--workdir {MISSING}: no such folder"),
    ("eval", ["--workdir", MISSING, "--config", DEMO], f"--workdir {MISSING}: no such folder"),
    ("convert_checkpoint", ["--input", MISSING, "--output", "{out}"],
     f"--input {MISSING}: no such file or folder"),
    ("prepare_dataset", ["images", "--input", MISSING, "--split", "train", "--output", "{out}"],
     f"{MISSING}: not a directory"),
    ("plot", [MISSING, "--out", "{out}/curves.png"], f"{MISSING}: no metrics.jsonl"),
    ("model_table", ["configs/nothing.py"], "no config file matches"),
    ("benchmark", ["--config", "configs/nothing.py"], "no config file at"),
    ("launch_local", ["--num_processes", "0", "--", "true"], "--num_processes must be >= 1"),
    ("launch_local", ["--num_processes", "2"], "no command"),
])
def test_argparse_tools(tool, args, message, tmp_path, capsys):
    out = tmp_path / "out"
    module = importlib.import_module(f"tools.{tool}")
    with pytest.raises(SystemExit) as exit_info:
        cli.exit_on_config_error(module.main, [a.format(out=out) for a in args])
    assert exit_info.value.code == 2
    assert_one_error_line(capsys.readouterr().err, message)
    assert not out.exists()


def _absl_tool(tool, *args):
    return subprocess.run([sys.executable, "-m", f"tools.{tool}", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


def test_train_missing_prepared_data_is_one_line_before_the_workdir(tmp_path):
    workdir = tmp_path / "run"
    out = _absl_tool("train", "--config", DEMO, "--workdir", str(workdir),
                     "--config.data.train.name=array_record",
                     f"--config.data.train.path={MISSING}")
    assert out.returncode == 2
    assert_one_error_line(out.stderr, "config.data.train (array_record, split 'train'): "
                                      f"{MISSING}: no dataset_info.json")
    assert not workdir.exists()


def test_train_without_the_wandb_package_is_one_line_before_the_workdir(tmp_path):
    if importlib.util.find_spec("wandb") is not None:
        pytest.skip("wandb is installed")
    workdir = tmp_path / "run"
    out = _absl_tool("train", "--config", DEMO, "--workdir", str(workdir),
                     "--config.wandb.enabled=true")
    assert out.returncode == 2
    assert_one_error_line(out.stderr, "config.wandb.enabled=True needs the wandb package")
    assert not workdir.exists()


def test_benchmark_data_missing_config():
    out = _absl_tool("benchmark_data", "--config", "configs/nothing.py")
    assert out.returncode == 2
    assert_one_error_line(out.stderr, "no config file at 'configs/nothing.py'")
