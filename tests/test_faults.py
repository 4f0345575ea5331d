"""Guards, each with its error text checked: NaN/Inf updates (stop or skip), incomplete and
unreadable checkpoints, a checkpoint from another config, corrupt records, a changed config,
a bad init_from, and loading without pickle."""

import ast
import dataclasses
import glob
import json
import logging
import os

import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
import pytest

from framework import checkpoint, guards, registry, sharding, trainer
from framework import config as config_lib
from framework.data import global_order, pipeline, synthetic
from framework.registry import ConfigError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO = "configs/synthetic_shapes_vit.py:test"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("data")


def _config(data_dir, *overrides):
    base = [f"data.data_dir={data_dir}", "log_every=1", "checkpoint_every=2",
            "checkpoint.async_save=false"]
    config = config_lib.load_config(DEMO, base + list(overrides))
    config.evaluators = ml_collections.ConfigDict()  # Nothing here needs an eval pass.
    return config


def _rows(workdir):
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f]


def _committed(workdir):
    return sorted(int(n) for n in os.listdir(os.path.join(workdir, "checkpoints")) if n.isdigit())


def _assert_identical(a, b):
    leaves_a, leaves_b = jax.tree.leaves(a), jax.tree.leaves(b)
    assert len(leaves_a) == len(leaves_b) > 0
    for x, y in zip(leaves_a, leaves_b):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


@pytest.fixture
def nan_batch_at(monkeypatch):
    """nan_batch_at(step): the train batch of `step` (counted in this process) becomes NaN."""
    original = sharding.shard_batch

    def install(step):
        seen = {"train": 0}

        def poisoning(local, mesh):
            if "mask" not in local:
                seen["train"] += 1
                if seen["train"] == step:
                    local = dict(local, image=np.full_like(local["image"], np.nan))
            return original(local, mesh)

        monkeypatch.setattr(sharding, "shard_batch", poisoning)

    return install


def _saved_state(workdir, step):
    return ocp.PyTreeCheckpointer().restore(str(workdir / "checkpoints" / str(step) / "state"))


def test_nonfinite_update_stops_naming_the_step_or_is_skipped(data_dir, tmp_path, nan_batch_at):
    # Stop (the default): step 3's NaN is caught while step 4 runs (the check does not stall
    # the device), before step 4's save; checkpoint 2 stays the last one.
    nan_batch_at(3)
    stopped = tmp_path / "stop"
    with pytest.raises(guards.NonFiniteError,
                       match=r"step 3: the loss \(nan\) or the gradient .*NaN or Inf; "
                             r"training stopped.*last good checkpoint, step 2 .* is untouched"):
        trainer.train_and_evaluate(_config(data_dir, "total_steps=4"), str(stopped))
    assert _committed(stopped) == [2]
    good = _saved_state(stopped, 2)
    assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(good["params"]))

    # Skip: the run goes on; the update of step 3 was not applied, so the state saved after
    # step 3 has step 2's params and optimizer state.
    nan_batch_at(3)  # A fresh count of train batches.
    skipped = tmp_path / "skip"
    trainer.train_and_evaluate(
        _config(data_dir, "total_steps=4", "on_nonfinite=skip", "checkpoint_every=1"),
        str(skipped))
    after_nan = _saved_state(skipped, 3)
    assert int(after_nan["step"]) == 3
    _assert_identical((after_nan["params"], after_nan["opt_state"]),
                      (good["params"], good["opt_state"]))
    counts = [r["train/nonfinite_steps"] for r in _rows(skipped) if "train/nonfinite_steps" in r]
    assert counts == [0.0, 0.0, 1.0, 0.0]
    with pytest.raises(ConfigError, match=r"config.on_nonfinite='ignore': must be one of stop"):
        trainer.build(_config(data_dir, "on_nonfinite=ignore"), str(tmp_path / "bad"))


def test_incomplete_or_unreadable_checkpoint_falls_back_to_the_previous(data_dir, tmp_path,
                                                                        caplog):
    config = _config(data_dir, "total_steps=4")
    workdir = tmp_path / "run"
    reference = trainer.train_and_evaluate(config, str(workdir))
    assert _committed(workdir) == [2, 4]

    # A commit that never completed (no commit marker, as left by a non-atomic copy).
    os.remove(workdir / "checkpoints" / "4" / "commit_success.txt")
    with caplog.at_level(logging.WARNING):
        again = trainer.train_and_evaluate(config, str(workdir))
    assert "its commit is incomplete (missing commit_success.txt)" in caplog.text
    assert len(glob.glob(str(workdir / "checkpoints_incomplete" / "4-*"))) == 1  # Kept.
    _assert_identical(again.state.params, reference.state.params)

    # A committed checkpoint whose array files were truncated afterwards.
    caplog.clear()
    for path in glob.glob(str(workdir / "checkpoints" / "4" / "state" / "**" / "d" / "*"),
                          recursive=True):
        with open(path, "r+b") as f:
            f.truncate(os.path.getsize(path) // 2)
    with caplog.at_level(logging.WARNING):
        third = trainer.train_and_evaluate(config, str(workdir))
    assert "could not be read" in caplog.text and "trying the previous one" in caplog.text
    assert len(glob.glob(str(workdir / "checkpoints_incomplete" / "4-*"))) >= 1
    _assert_identical(third.state.params, reference.state.params)


@pytest.fixture(scope="module")
def finished_run(data_dir, tmp_path_factory):
    """A workdir holding a finished 2-step run."""
    workdir = tmp_path_factory.mktemp("finished") / "run"
    trainer.train_and_evaluate(_config(data_dir, "total_steps=2"), str(workdir))
    return workdir


def _snapshot(workdir):
    files = {}
    for path in glob.glob(str(workdir / "**"), recursive=True):
        if os.path.isfile(path):
            with open(path, "rb") as f:
                files[os.path.relpath(path, workdir)] = f.read()
    return files


def test_changed_config_is_refused_by_flag_and_nothing_is_touched(data_dir, finished_run):
    before = _snapshot(finished_run)
    with pytest.raises(ConfigError, match=r'(?s)differs from the one saved in .*config.json.*'
                                          r'-\s+"lr": 0.002,\n\+\s+"lr": 0.001,.*new --workdir'):
        trainer.train_and_evaluate(_config(data_dir, "total_steps=2", "optimizer.lr=0.001"),
                                   str(finished_run), on_config_change="refuse")
    assert _snapshot(finished_run) == before


def test_checkpoint_of_another_model_is_a_clear_error(data_dir, finished_run):
    before = _snapshot(finished_run)
    with pytest.raises(checkpoint.CheckpointMismatchError,
                       match=r"(?s)does not fit this run's model/optimizer.*"
                             r"checkpoint shape \(32,\) but this run needs \(16,\).*"
                             r"new --workdir"):
        trainer.train_and_evaluate(_config(data_dir, "total_steps=2", "model.hidden_size=16"),
                                   str(finished_run))
    assert _snapshot(finished_run) == before  # Not even config.json was replaced.


def test_changed_config_warns_and_keeps_the_earlier_config(data_dir, finished_run, tmp_path,
                                                           caplog):
    workdir = tmp_path / "copy"
    os.makedirs(workdir)
    for name, content in _snapshot(finished_run).items():
        os.makedirs(os.path.dirname(workdir / name), exist_ok=True)
        (workdir / name).write_bytes(content)
    old = (workdir / "config.json").read_text()
    with caplog.at_level(logging.WARNING):
        trainer.train_and_evaluate(_config(data_dir, "total_steps=3", "log_every=3"),
                                   str(workdir))
    assert '-  "total_steps": 2,' in caplog.text and '+  "total_steps": 3,' in caplog.text
    assert (workdir / "config.1.json").read_text() == old
    assert json.loads((workdir / "config.json").read_text())["total_steps"] == 3


class _TruncatedSource:
    def __init__(self, source, bad):
        self.source, self.bad = source, set(bad)

    def __len__(self):
        return len(self.source)

    def __getitem__(self, index):
        record = self.source[index]
        return record[:len(record) // 2] if int(index) in self.bad else record


BAD_RECORDS = tuple(range(0, 512, 6))


@registry.DATASETS.register("test_truncated_shapes")
def _truncated_shapes(split, data_dir, **kwargs):
    spec = synthetic.synthetic_shapes(split, data_dir, **kwargs)
    return dataclasses.replace(spec, name="test_truncated_shapes",
                               source=_TruncatedSource(spec.source, BAD_RECORDS))


def _truncated_data(*extra):
    return ("data.train.name=test_truncated_shapes",) + extra


def test_truncated_records_are_skipped_and_counted(data_dir, tmp_path):
    config = _config(data_dir, "total_steps=3", "checkpoint_every=0", *_truncated_data(),
                     "data.on_corrupt=skip")
    trainer.train_and_evaluate(config, str(tmp_path / "run"))
    # Independently: walk the global record order until 3 batches of 16 good records.
    order = global_order.GlobalOrderSampler(512, 16, 0, 1, config.seed)
    expected, good, position = [], 0, 0
    for step in range(3):
        while good < 16 * (step + 1):
            if order[position].record_key in BAD_RECORDS:
                expected.append(step)
            else:
                good += 1
            position += 1
    counts = [r["train/skipped_records"] for r in _rows(tmp_path / "run")
              if "train/skipped_records" in r]
    assert counts[-1] > 0
    assert counts == [float(sum(1 for s in expected if s <= step)) for step in range(3)]


def test_skipped_count_with_worker_processes(data_dir):
    config = _config(data_dir, *_truncated_data(), "data.on_corrupt=skip", "data.worker_count=2")
    iterator = iter(pipeline.make_train_loader(config.data, 16, config.seed))
    for _ in range(3):
        next(iterator)
    # Worker w reads global positions w, w + 2, w + 4, ...; batches alternate between workers,
    # so after 3 batches worker 0 filled 2 batches and worker 1 one.
    order = global_order.GlobalOrderSampler(512, 16, 0, 1, config.seed)
    expected = 0
    for worker, batches in ((0, 2), (1, 1)):
        good, position = 0, worker
        while good < 16 * batches:
            bad = order[position].record_key in BAD_RECORDS
            expected, good = expected + bad, good + (not bad)
            position += 2
    got = guards.skipped_records(iterator.get_state(), 3, 16, 0, 1)
    assert got == expected > 0


def test_truncated_record_is_an_error_by_default(data_dir, tmp_path):
    config = _config(data_dir, "total_steps=3", *_truncated_data())
    with pytest.raises(Exception, match=r"'test_truncated_shapes' split 'train': record \d+ is "
                                        r"corrupt.*config.data.on_corrupt='skip'"):
        trainer.train_and_evaluate(config, str(tmp_path / "run"))


def test_init_from_missing_or_mismatched_checkpoint(data_dir, finished_run, tmp_path):
    missing = _config(data_dir, f"init_from.path={tmp_path / 'nowhere'}")
    with pytest.raises(ConfigError, match=r"config.init_from.path=.*nowhere': no such file"):
        trainer.build(missing, str(tmp_path / "a"))
    assert not (tmp_path / "a").exists()
    wider = _config(data_dir, f"init_from.path={finished_run}", "model.hidden_size=16",
                    "total_steps=1", "schedule.warmup_steps=0")
    with pytest.raises(ConfigError, match=r"config.init_from: these parameters exist in the "
                                          r"checkpoint and the model with shapes that cannot"):
        trainer.train_and_evaluate(wider, str(tmp_path / "b"))
    assert not (tmp_path / "b" / "checkpoints").exists() or not _committed(tmp_path / "b")


def test_numpy_files_are_loaded_without_pickle():
    offenders = []
    for pattern in ("framework/**/*.py", "tools/**/*.py", "projects/**/*.py", "configs/*.py"):
        for path in glob.glob(os.path.join(ROOT, pattern), recursive=True):
            with open(path) as f:
                tree = ast.parse(f.read())
            for node in ast.walk(tree):
                if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                        and node.func.attr == "load"
                        and getattr(node.func.value, "id", "") in ("np", "numpy")):
                    safe = any(k.arg == "allow_pickle" and isinstance(k.value, ast.Constant)
                               and k.value.value is False for k in node.keywords)
                    if not safe:
                        offenders.append(f"{os.path.relpath(path, ROOT)}:{node.lineno}")
                if isinstance(node, ast.Import | ast.ImportFrom):
                    names = [a.name for a in node.names] + [getattr(node, "module", "") or ""]
                    if any(n in ("pickle", "cloudpickle", "dill") for n in names):
                        offenders.append(f"{os.path.relpath(path, ROOT)}:{node.lineno} (pickle)")
    assert not offenders, "np.load without allow_pickle=False, or pickle: " + str(offenders)
