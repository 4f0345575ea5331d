"""tools.eval, tools.convert_checkpoint and tools.plot end to end on one tiny trained run."""

import json

import numpy as np
import pytest
from flax import serialization

from framework import config as config_lib
from framework import pretrained, trainer
from framework.registry import ConfigError
from tools import convert_checkpoint, plot
from tools import eval as eval_tool

TINY = "configs/synthetic_shapes_vit.py:test"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A tiny ViT trained 10 steps (checkpoints at 5 and 10, eval at 10): (workdir, data)."""
    root = tmp_path_factory.mktemp("tools")
    data = f"data.data_dir={root / 'data'}"
    config = config_lib.load_config(TINY, [data, "checkpoint.async_save=false"])
    trainer.train_and_evaluate(config, str(root / "run"))
    return root / "run", data


def _rows(workdir):
    with open(workdir / "metrics.jsonl") as f:
        return [json.loads(line) for line in f]


def _final_eval(workdir):
    return [r for r in _rows(workdir) if "eval/classification/top1" in r][-1]


def _eval_json(capsys, *argv):
    assert eval_tool.main(list(map(str, argv)) + ["--json"]) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_eval_reproduces_the_runs_final_eval(run, capsys):
    workdir, _ = run
    expected = _final_eval(workdir)
    in_flight = workdir / "checkpoints" / "15.orbax-checkpoint-tmp-1234567"
    in_flight.mkdir()  # As if the run were still training and saving step 15.
    got = _eval_json(capsys, "--workdir", workdir)
    assert in_flight.is_dir()  # tools.eval reads; it never cleans up a running job's saves.
    in_flight.rmdir()
    assert got["step"] == 10
    for key in ("eval/classification/top1", "eval/classification/loss"):
        assert got[key] == pytest.approx(expected[key], rel=1e-6)


EVAL_CONFIG = """
from configs import synthetic_shapes_vit


def get_config(arg=None):
    c = synthetic_shapes_vit.get_config("test")
    c.evaluators.classification.topk = (1, 3)
    c.evaluators.classification.batch_size = 32
    return c
"""


def test_eval_other_step_and_other_eval_config(run, tmp_path, capsys):
    workdir, data = run
    at_5 = _eval_json(capsys, "--workdir", workdir, "--step", 5)
    assert at_5["step"] == 5
    assert at_5["eval/classification/loss"] != _final_eval(workdir)["eval/classification/loss"]
    eval_config = tmp_path / "top3.py"
    eval_config.write_text(EVAL_CONFIG)
    other = _eval_json(capsys, "--workdir", workdir, "--config", eval_config,
                       f"--config.{data}", "--write_metrics")
    assert "eval/classification/top3" in other and "eval/classification/top5" not in other
    assert other["eval/classification/top1"] == pytest.approx(
        _final_eval(workdir)["eval/classification/top1"])
    assert "eval/classification/top3" in _rows(workdir)[-1]  # --write_metrics appended it.


def test_eval_bad_input(run, tmp_path):
    workdir, _ = run
    with pytest.raises(ConfigError, match=r"--step=7: no such checkpoint.*steps 5, 10"):
        eval_tool.main(["--workdir", str(workdir), "--step", "7"])
    with pytest.raises(ConfigError, match="no config.json"):
        eval_tool.main(["--workdir", str(tmp_path)])


def test_eval_of_a_workdir_recorded_before_newer_config_keys(run, tmp_path):
    """A config.json written before `wandb`, `on_nonfinite` and `checkpoint.async_save`
    existed still evaluates: the missing keys get their defaults."""
    workdir, _ = run
    recorded = json.loads((workdir / "config.json").read_text())
    for key in ("wandb", "on_nonfinite"):
        recorded.pop(key)
    recorded["checkpoint"].pop("async_save")
    old = tmp_path / "old_run"
    old.mkdir()
    (old / "config.json").write_text(json.dumps(recorded))
    config = eval_tool.run_config(str(old))
    assert config.wandb.to_dict() == config_lib.load_config(TINY).wandb.to_dict()
    assert "on_nonfinite" in config and "async_save" in config.checkpoint
    recorded["wandb"] = {"projekt": "x"}  # A misspelt key is still an error, not filled.
    (old / "config.json").write_text(json.dumps(recorded))
    with pytest.raises(ConfigError, match="config.wandb"):
        eval_tool.run_config(str(old))


def test_tessera_to_npz_and_back_to_a_workdir(run, tmp_path, capsys):
    workdir, data = run
    npz = tmp_path / "params.npz"
    assert convert_checkpoint.main(["--input", str(workdir), "--output", str(npz),
                                    "--dry_run"]) == 0
    assert "Transformer/encoderblock_0/MlpBlock_0/Dense_0/kernel" in capsys.readouterr().out
    assert not npz.exists()
    assert convert_checkpoint.main(["--input", str(workdir), "--output", str(npz)]) == 0
    ours = pretrained.load_flat_params(str(workdir))
    with np.load(npz, allow_pickle=False) as saved:
        assert sorted(saved.files) == sorted(ours)
        for key in ours:
            np.testing.assert_array_equal(saved[key], ours[key])

    converted = tmp_path / "converted"
    assert convert_checkpoint.main(["--input", str(npz), "--output", str(converted),
                                    "--config", TINY, f"--config.{data}"]) == 0
    assert "39 loaded, 0 resized, 0 inflated, 0 init" in capsys.readouterr().out
    got = _eval_json(capsys, "--workdir", converted)
    assert got["step"] == 0
    assert got["eval/classification/loss"] == pytest.approx(
        _final_eval(workdir)["eval/classification/loss"], rel=1e-6)
    with pytest.raises(FileExistsError, match="already exists"):
        convert_checkpoint.main(["--input", str(npz), "--output", str(converted)])


def test_scenic_checkpoint_to_params_only_checkpoint(run, tmp_path, capsys):
    workdir, data = run
    ours = pretrained.load_flat_params(str(workdir))
    scenic = tmp_path / "checkpoint_10"
    scenic.write_bytes(serialization.msgpack_serialize(
        {"global_step": 10, "optimizer": {"target": {"params": pretrained.unflatten(ours)}}}))
    assert convert_checkpoint.main(["--input", str(scenic), "--output", str(tmp_path / "x"),
                                    "--config", TINY, f"--config.{data}",
                                    "--dont_load", "^head/", "--dry_run"]) == 0
    report = capsys.readouterr().out
    assert "37 loaded" in report and "2 init" in report and "init (dont_load)" in report
    assert not (tmp_path / "x").exists()
    out = tmp_path / "params_only"
    assert convert_checkpoint.main(["--input", str(scenic), "--output", str(out)]) == 0
    back = pretrained.load_flat_params(str(out), "tessera")
    assert sorted(back) == sorted(ours)
    np.testing.assert_array_equal(back["head/kernel"], ours["head/kernel"])


def test_plot_two_runs(run, tmp_path, capsys):
    workdir, _ = run
    other = tmp_path / "other"
    other.mkdir()
    (other / "metrics.jsonl").write_text("".join(
        json.dumps({"step": s, "train/loss": 3.0 - 0.1 * s, "train/lr": 1e-3}) + "\n"
        for s in range(1, 11)))
    png = tmp_path / "curves.png"
    assert plot.main([str(workdir), str(other), "--out", str(png)]) == 0
    assert "eval/classification/top1" in capsys.readouterr().out
    from matplotlib import pyplot as plt

    image = plt.imread(png)
    assert image.shape[0] > 300 and image.shape[1] > 600
    assert image[..., :3].std() > 0.05  # Not a blank canvas.
    assert plot.main([str(other), "--out", str(tmp_path / "x.png"),
                      "--metrics", "eval/*"]) == 2
    with pytest.raises(FileNotFoundError, match="no metrics.jsonl"):
        plot.main([str(tmp_path), "--out", str(tmp_path / "y.png")])
