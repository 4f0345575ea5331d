"""Every paper config (each entry of VARIANTS of each non-synthetic file under
projects/*/configs/) runs end to end as tools.train runs it: 2 train steps with a
checkpoint and resume in between, then one evaluation with the config's own evaluators, on
a few examples in its dataset's real format (tests/paper_fixtures.py).

Only the model (width 16, 1 layer (2 for TokenLearner), 2 heads), the frames / pixels /
text tokens per example (the numbers inside the size-taking preprocess ops; every op and its
other arguments stay the config's) and the step counts / batch sizes are shrunk, through
command-line style overrides. The datasets are written once per session; the selected
configs then run in SHARDS driver processes at once (tests/paper_configs_driver.py:
fast-compile XLA flags and a persistent compilation cache shared by the runs of one
process), and each config's test reads its result. `-k` selects variants: only the selected
ones run.

A new paper config file is picked up by itself. Its variants need a shrinking rule for
their model name (`model_overrides`) and test data in their dataset's format: a prepared
set named like its config.data path (tests/paper_fixtures.py, VIDEO_SETS or
IMAGE_TEXT_SETS) or a TFDS builder written by paper_fixtures.
"""

from __future__ import annotations

import glob
import json
import os
import re
import subprocess
import sys

import paper_fixtures
import pytest

from framework import config as config_lib
from tools import cli

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAPER_FILES = sorted(p for p in glob.glob(os.path.join(ROOT, "projects", "*", "configs", "*.py"))
                     if not os.path.basename(p).startswith(("synthetic", "__")))
WIDTH, MLP, HEADS = 16, 32, 2
BATCH = 8  # One example per virtual device.
TEXT_LENGTH = 8  # Tokens per caption / prompt.


def _specs() -> list[str]:
    out = []
    for path in PAPER_FILES:
        variants = getattr(config_lib.load_module(path), "VARIANTS", None) or (None,)
        rel = os.path.relpath(path, ROOT)
        out += [rel if v is None else f"{rel}:{v}" for v in variants]
    return out


SPECS = _specs()
# SHARDS driver processes (the machine's cores) share the config files: each takes the next
# file not taken yet and runs all its variants, which share compiled programs. The files
# with the most expensive variants go first (COST: relative compile time of a model).
SHARDS = 2
COST = {"mtv.classifier": 4, "image_text.two_tower": 3}


def file_groups(specs: list[str], models: dict[str, str]) -> list[list[str]]:
    """Groups `specs` by config file, the groups ordered by their summed COST (of
    models[spec], the model name; 1 when not in COST), largest first."""
    files: dict[str, list[str]] = {}
    for spec in specs:
        files.setdefault(spec.split(":")[0], []).append(spec)
    return sorted(files.values(), key=lambda g: -sum(COST.get(models[s], 1) for s in g))


def shrink_preprocess(text: str, frames: int, size: int) -> str:
    """Returns preprocess `text` with its frame counts set to `frames`, its pixel sizes
    scaled so that the crop / resize size is `size` (short-side resizes keep their ratio to
    the crop) and its text length set to TEXT_LENGTH; every op and its other arguments are
    kept."""
    crop = re.search(r"(?:random_crop|three_crop|center_crop|inception_crop|resize)\((\d+)",
                     text)
    scale = size / int(crop.group(1)) if crop else 1.0

    def frames_of(m):
        return f"{m.group(1)}({frames}"

    def sized(m):
        value = int(m.group(2))
        return f"{m.group(1)}({size if m.group(1) != 'resize_small' else round(value * scale)}"

    text = re.sub(r"(sample_frames|sample_clips)\((\d+)", frames_of, text)
    text = re.sub(r"(tokenize\((?:[^)]*max_len=)?)\d+", rf"\g<1>{TEXT_LENGTH}", text)
    return re.sub(r"(random_crop|three_crop|center_crop|inception_crop|resize_small|resize)"
                  r"\((\d+)", sized, text)


def _shrink_vit(prefix: str, model: dict, depth: int = 1) -> list[str]:
    return [f"{prefix}.hidden_size={WIDTH}", f"{prefix}.mlp_dim={MLP}",
            f"{prefix}.num_heads={HEADS}", f"{prefix}.depth={depth}"]


def model_overrides(model) -> tuple[list[str], int, int]:
    """Returns (overrides that shrink config.model, frames, pixel size) for a paper model."""
    name = model.name
    if name == "vivit.classifier":
        t, p = model.patch_size[0], model.patch_size[1]
        out = _shrink_vit("model", model) + [
            f"model.temporal_depth={min(model.temporal_depth, 1)}"]
        return out, 2 * t, 2 * p
    if name == "token_learner.classifier":
        p = model.patch_size[-1]
        out = _shrink_vit("model", model, depth=2)
        if model.tokenlearner_loc is not None:
            out.append("model.tokenlearner_loc=1")
        frames = 2 * model.patch_size[0] if len(model.patch_size) == 3 else 0
        return out, frames, 2 * p
    if name == "mtv.classifier":
        views = tuple(dict(view, hidden_size=WIDTH + 8 * i, depth=1, mlp_dim=2 * (WIDTH + 8 * i),
                           num_heads=HEADS) for i, view in enumerate(model.views))
        out = [f"model.views={views!r}", "model.fusion_layers=(0,)"]
        out += [f"model.global_encoder.{k}={v}" for k, v in
                dict(depth=1, mlp_dim=MLP, num_heads=HEADS, hidden_size=WIDTH).items()]
        frames = max(v["tubelet"][0] for v in model.views)
        return out, frames, 2 * model.views[0]["tubelet"][1]
    if name == "image_text.two_tower":
        out = _shrink_vit("model.image", model.image) + _shrink_vit("model.text", model.text)
        out.append(f"model.out_dim=(None, {WIDTH})")
        return out, 0, 2 * model.image.patch_size[0]
    raise AssertionError(f"{name}: no shrinking rule for this model; add one here.")


def overrides_for(spec: str, data_dir: str, tfds_dir: str) -> list[str]:
    """Returns the command-line overrides that run `spec` small on the test datasets."""
    c = cli.load_config(os.path.join(ROOT, spec))
    out, frames, size = model_overrides(c.model)
    out += ["total_steps=2", f"batch_size={BATCH}", "log_every=1", "eval_every=0",
            "checkpoint_every=1", "schedule.warmup_steps=1", f"data.data_dir={data_dir}"]
    for split in c.data:
        if not isinstance(c.data[split], type(c.data)):
            continue
        out.append(f"data.{split}.preprocess="
                   f"{shrink_preprocess(c.data[split].preprocess, frames, size)}")
        if c.data[split].name == "tfds":
            out.append(f"data.{split}.tfds_data_dir={tfds_dir}")
    for key in c.model_input:
        spec_text = c.model_input[key]
        if key in ("video", "image"):
            dims = f"{frames},{size},{size},3" if key == "video" else f"{size},{size},3"
            out.append(f"model_input.{key}={spec_text.split('[')[0]}[{dims}]")
        if key == "text":  # The zero-shot prompts (80 per class) take this length too.
            out.append(f"model_input.text={spec_text.split('[')[0]}[{TEXT_LENGTH}]")
    if "zero_shot" in c.evaluators:  # 80k prompts: embedded in batches of 2048.
        out.append("evaluators.zero_shot.batch_size=2048")
    return out


def _selected_specs(session) -> list[str]:
    """The specs of this session's selected variant tests (all of them without -k)."""
    return [item.callspec.params["spec"] for item in session.items
            if item.originalname == "test_paper_config_trains_resumes_and_evaluates"]


@pytest.fixture(scope="session")
def paper_runs(request, tmp_path_factory) -> dict:
    """Writes every real-format test set once, then runs the selected paper configs in
    SHARDS driver processes at once (tests/paper_configs_driver.py); returns their results
    by spec."""
    root = tmp_path_factory.mktemp("paper_data")
    paper_fixtures.write_video_sets(str(root))
    sentencepiece = paper_fixtures.write_image_text_sets(str(root))
    tfds_dir = str(root / "tfds")
    paper_fixtures.write_imagenet_tfds(tfds_dir, str(tmp_path_factory.mktemp("imagenet")))
    cwd = tmp_path_factory.mktemp("cwd")
    env = dict(os.environ, PYTHONPATH=ROOT)
    env["XLA_FLAGS"] = " ".join(f for f in env.get("XLA_FLAGS", "").split()
                                if "device_count" not in f)
    specs = _selected_specs(request.session)
    configs = {spec: cli.load_config(os.path.join(ROOT, spec)) for spec in specs}
    for config in configs.values():
        for evaluator in config.evaluators.values():
            link = cwd / evaluator.get("tokenizer", "bytes")
            if evaluator.get("tokenizer", "bytes") != "bytes" and not link.exists():
                os.symlink(sentencepiece, link)
    groups = file_groups(specs, {spec: c.model.name for spec, c in configs.items()})
    work = tmp_path_factory.mktemp("runs")
    plan = work / "plan.json"
    plan.write_text(json.dumps({"workdir": str(work), "cwd": str(cwd), "groups": [
        [{"spec": spec, "overrides": overrides_for(spec, str(root), tfds_dir)}
         for spec in group] for group in groups]}))
    driver = os.path.join(ROOT, "tests", "paper_configs_driver.py")
    procs = []
    for index in range(min(SHARDS, len(groups))):
        with open(work / f"driver{index}.log", "w") as log:  # The child keeps its own handle.
            procs.append((index, subprocess.Popen(
                [sys.executable, driver, str(plan), str(work / f"results{index}.json"),
                 str(work / f"jax_cache{index}")],
                env=env, stdout=log, stderr=subprocess.STDOUT)))
    done = {}
    for index, proc in procs:
        proc.wait(timeout=1800)
        results = work / f"results{index}.json"
        if results.exists():
            done.update(json.loads(results.read_text()))
        if proc.returncode != 0:  # A crash: the configs it did not reach say so, with its end.
            tail = "\n".join((work / f"driver{index}.log").read_text().splitlines()[-15:])
            done["_crash"] = (done.get("_crash", "") +
                              f"driver {index} exited with status {proc.returncode}:\n{tail}\n")
    return done


def test_every_paper_config_is_covered():
    names = {os.path.basename(p) for p in PAPER_FILES}
    assert {"kinetics400_vivit.py", "kinetics600_mtv.py", "imagenet_token_learner.py",
            "webli_siglip.py", "imagetext_lit.py", "epic_kitchens_vivit.py"} <= names
    assert len(SPECS) >= 37


def test_shrinking_keeps_every_op_and_argument_but_sizes():
    text = ("decode_video|sample_frames(32, stride=2)|resize_small(256)|random_crop(224)|"
            "tokenize(max_len=64, model='c4_en.model', eos='sticky')|tokenize(16, inkey='t')")
    assert shrink_preprocess(text, 4, 32) == (
        "decode_video|sample_frames(4, stride=2)|resize_small(37)|random_crop(32)|"
        f"tokenize(max_len={TEXT_LENGTH}, model='c4_en.model', eos='sticky')|"
        f"tokenize({TEXT_LENGTH}, inkey='t')")


def test_file_groups_keep_variants_together_costliest_first():
    specs = ["a.py:1", "a.py:2", "b.py:1", "c.py:1", "c.py:2", "c.py:3"]
    models = {"a.py:1": "mtv.classifier", "a.py:2": "mtv.classifier"}
    assert file_groups(specs, models | {"b.py:1": "x", "c.py:1": "x", "c.py:2": "x",
                                        "c.py:3": "x"}) == [
        ["a.py:1", "a.py:2"], ["c.py:1", "c.py:2", "c.py:3"], ["b.py:1"]]


@pytest.mark.parametrize("spec", SPECS)
def test_paper_config_trains_resumes_and_evaluates(spec, paper_runs):
    result = paper_runs.get(spec)
    assert result is not None, f"{spec}: not run. {paper_runs.get('_crash', '')}"
    assert result["error"] is None, f"{spec} cannot run end to end: {result['error']}"
    assert result["train_steps"] == [1, 2], f"{spec}: not resumed ({result['train_steps']})"
    assert result["checkpoints"] == ["1", "2"]
    evals = result["evals"]
    for name in result["evaluators"]:
        ours = {k: v for k, v in evals.items() if k.startswith(f"eval/{name}/")}
        counts = [v for k, v in ours.items() if k.endswith("/count")]
        accuracies = [v for k, v in ours.items() if "top1" in k]
        assert counts and counts[0] > 0 and accuracies, f"{spec}: no {name} metrics: {evals}"
        assert all(0 <= a <= 1 for a in accuracies)
