"""README's "Train on your own data": its commands, run as written on a few real video files,
image files and image-text pairs made here (prepare each kind, then train a tiny config on it
with command-line arguments only). Only the step count, batch and device count are shrunk so
that each run takes seconds, and prepare_dataset uses one worker."""

import json
import os
import re
import shlex
import subprocess
import sys

import pytest

from framework.data import synthetic_media as media
from tools import prepare_dataset

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHRINK = ["--config.total_steps=2", "--config.batch_size=4", "--config.log_every=1",
          "--config.schedule.warmup_steps=1"]


def readme_commands() -> dict[str, list[str]]:
    """Returns {output folder name: the commands of its bash block} of the README section."""
    with open(os.path.join(ROOT, "README.md")) as f:
        text = f.read()
    section = text.split("## Train on your own data")[1].split("\n## ")[0]
    blocks = {}
    for block in re.findall(r"```bash\n(.*?)```", section, re.S):
        commands = [c.strip() for c in block.replace("\\\n", " ").splitlines() if c.strip()]
        name = re.search(r"--output data/(\w+)", block).group(1)
        blocks[name] = commands
    return blocks


def write_media(root) -> None:
    """my_images/{train,val}/<3 classes>/, my_videos/{train,val}/<2 classes>/ and
    my_pairs/{train,val}.jsonl with photos/: 4 train and 2 val inputs per class (pairs: 8
    and 4)."""
    for split, count in (("train", 4), ("val", 2)):
        for c, name in enumerate(("cats", "dogs", "owls")):
            os.makedirs(root / "my_images" / split / name)
            for i in range(count):
                pixels = media.frame_pixels(i, 40, 48, seed=10 * c + i)
                (root / "my_images" / split / name / f"{i}.jpg").write_bytes(
                    media.jpeg_bytes(pixels))
        for c, name in enumerate(("left", "right")):
            os.makedirs(root / "my_videos" / split / name)
            for v in range(count):
                media.write_video(str(root / "my_videos" / split / name / f"{v}.mp4"),
                                  num_frames=10, seed=10 * c + v)
    os.makedirs(root / "my_pairs" / "photos")
    for split, first, count in (("train", 0, 8), ("val", 8, 4)):
        with open(root / "my_pairs" / f"{split}.jsonl", "w") as f:
            for i in range(first, first + count):
                pixels = media.frame_pixels(i, 40, 48, seed=i)
                (root / "my_pairs" / "photos" / f"{i}.jpg").write_bytes(media.jpeg_bytes(pixels))
                f.write(json.dumps({"image": f"photos/{i}.jpg",
                                    "caption": f"photo {i}: a {'red' if i % 2 else 'blue'} "
                                               "shape"}) + "\n")


@pytest.fixture(scope="module")
def user_folder(tmp_path_factory):
    """A folder laid out like the repository root (configs/ and projects/ linked) holding the
    user's media."""
    root = tmp_path_factory.mktemp("user")
    for name in ("configs", "projects"):
        os.symlink(os.path.join(ROOT, name), root / name)
    write_media(root)
    return root


def run(command: str, cwd, monkeypatch) -> str:
    """Runs one README command in `cwd` ($PWD -> cwd), shrunk for tests; returns its stdout.
    tools.prepare_dataset runs in this process (its main takes the same arguments), tools.train
    in a subprocess of this interpreter on one CPU device."""
    argv = shlex.split(command.replace("$PWD", str(cwd)))
    assert argv[:2] == ["python", "-m"], command
    if argv[2] == "tools.prepare_dataset":
        monkeypatch.chdir(cwd)
        assert prepare_dataset.main(argv[3:] + ["--workers", "1"]) == 0, command
        return ""
    env = dict(os.environ, PYTHONPATH=ROOT, JAX_PLATFORMS="cpu",
               XLA_FLAGS="--xla_force_host_platform_device_count=1")
    out = subprocess.run([sys.executable, *argv[1:], *SHRINK], cwd=cwd, env=env,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, command + "\n" + out.stdout[-3000:] + out.stderr[-3000:]
    return out.stdout


@pytest.mark.parametrize("name,evaluator,count", [
    ("my_images", "classification", 6), ("my_videos", "classification", 4),
    ("my_pairs", "retrieval", 4)])
def test_readme_own_data_commands_train_on_prepared_folders(user_folder, monkeypatch, name,
                                                            evaluator, count):
    commands = readme_commands()[name]
    assert [c.split()[2] for c in commands] == ["tools.prepare_dataset"] * 2 + ["tools.train"]
    for command in commands:
        out = run(command, user_folder, monkeypatch)
    assert f"Data     array_record {user_folder}/data/{name}" in out, out
    workdir = user_folder / "workdirs" / name
    rows = [json.loads(line) for line in open(workdir / "metrics.jsonl")]
    losses = [r["train/loss"] for r in rows if "train/loss" in r]
    assert len(losses) == 2 and all(loss > 0 for loss in losses)
    assert rows[-1][f"eval/{evaluator}/count"] == count
    assert (workdir / "checkpoints" / "2").is_dir()


def test_too_few_classes_for_the_data_is_an_error_naming_the_number():
    from framework import config as config_lib
    from framework import trainer
    from framework.registry import ConfigError

    config = config_lib.load_config("configs/synthetic_shapes_vit.py:test",
                                    ["model.num_classes=3"])
    with pytest.raises(ConfigError, match=r"config.model.num_classes=3, but synthetic_shapes/"
                       r"train has 12 classes; set --config.model.num_classes=12\."):
        trainer.check_num_classes(config)
