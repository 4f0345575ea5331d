"""A bit flipped anywhere in a committed checkpoint is caught (or the file is not read at all):
OCDBT b-tree nodes, large arrays stored outside them, the data-iterator state, the metadata;
on resume the corrupt checkpoint is set aside and the previous one used; `init_from` and
tools.convert_checkpoint name the file and the cause."""

import glob
import logging
import os
import shutil
import subprocess
import sys

import ml_collections
import pytest

from framework import checkpoint, pretrained, trainer
from framework import checkpoint_integrity as integrity
from framework import config as config_lib
from framework import train_state as state_lib
from framework.data import pipeline

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A 4-step run of the tiny config with checkpoints 2 and 4, and what restores it."""
    tmp = tmp_path_factory.mktemp("integrity")
    config = config_lib.load_config("configs/synthetic_shapes_vit.py:test", [
        f"data.data_dir={tmp / 'data'}", "checkpoint.async_save=false", "total_steps=4",
        "checkpoint_every=2", "log_every=2"])
    config.evaluators = ml_collections.ConfigDict()
    workdir = str(tmp / "run")
    trainer.train_and_evaluate(config, workdir)
    return tmp, config, workdir


def _flip(path, offset=None):
    data = bytearray(open(path, "rb").read())
    offset = len(data) // 2 if offset is None else offset
    data[offset] ^= 0x01
    with open(path, "wb") as f:
        f.write(data)


@pytest.fixture(scope="module")
def restore(saved):
    """restore(workdir): restores the latest readable checkpoint; returns (step, digests of
    the state, data-iterator state)."""
    _, config, workdir = saved
    run = trainer.build(config, workdir)
    with state_lib.mesh_context(run):
        abstract = state_lib.state_spec(run).abstract_state
    return lambda path: _restore(run, config, abstract, path)


def _restore(run, config, abstract, workdir):
    with state_lib.mesh_context(run):
        data_iter = iter(pipeline.make_train_loader(config.data, config.batch_size, config.seed))
        checkpointer = checkpoint.Checkpointer(workdir, 3, async_save=False)
        try:
            step, state, _ = checkpointer.restore_latest(abstract, data_iter)
        finally:
            checkpointer.close()
        return step, integrity.array_digests(state), data_iter.get_state()


# Files a restore reads and where an array or the data position lives: a flipped bit there
# must be detected (the OCDBT b-tree nodes and data files are checked by name below).
MUST_DETECT = {"data/process_0-of-1.json", "meta/metadata", "state/_METADATA",
               "state/manifest.ocdbt"}


def test_a_flipped_bit_anywhere_is_detected_or_never_read(saved, restore, caplog):
    tmp, config, workdir = saved
    clean = restore(workdir)
    assert clean[0] == 4
    step_dir = os.path.join(workdir, "checkpoints", "4")
    files = sorted(os.path.relpath(f, step_dir) for f in glob.glob(f"{step_dir}/**",
                                                                   recursive=True)
                   if os.path.isfile(f))
    detected, unread = set(), set()
    for name in files:
        copy = str(tmp / "copy")
        shutil.rmtree(copy, ignore_errors=True)
        shutil.copytree(workdir, copy)
        offset = None
        if name == "data/process_0-of-1.json":  # A digit of the position: still valid JSON.
            text = open(os.path.join(step_dir, name)).read()
            offset = text.index('"0": ') + 6
        _flip(os.path.join(copy, "checkpoints", "4", name), offset)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="framework.checkpoint"):
            result = restore(copy)
        if result[0] == 4:
            # Not detected: then the file was not read, and the restore equals the clean one.
            assert result == clean, name
            unread.add(name)
            continue
        assert result[0] == 2, name
        warning = " ".join(r.getMessage() for r in caplog.records)
        assert "could not be read" in warning and "moved it to" in warning, name
        assert os.path.isdir(os.path.join(copy, "checkpoints", "2"))
        detected.add(name)
    assert MUST_DETECT <= detected, MUST_DETECT - detected
    # OCDBT: the database a restore reads is state/manifest.ocdbt + state/d/ (b-tree nodes
    # with small arrays inline, and the large arrays); every file of it is checked.
    database = [n for n in files if n.startswith("state/d/")]
    assert database and set(database) <= detected, (database, detected)
    # Files a restore never reads: orbax's commit markers and the per-process databases
    # that the commit merged into state/d/.
    assert all(n.endswith("commit_success.txt") or n == "_CHECKPOINT_METADATA"
               or n.startswith(("state/ocdbt.process_0/", "state/array_metadatas/"))
               for n in unread), unread


def test_convert_checkpoint_names_the_file_and_the_crc_failure(saved):
    tmp, _, workdir = saved
    copy = tmp / "convert_copy"
    shutil.copytree(workdir, copy)
    nodes = glob.glob(str(copy / "checkpoints" / "4" / "state" / "d" / "*"))
    node = max(nodes, key=os.path.getsize)
    _flip(node)
    with pytest.raises(integrity.CheckpointCorruptError) as caught:
        pretrained.load_flat_params(str(copy))
    assert os.path.basename(node) in str(caught.value)

    out = subprocess.run([sys.executable, "-m", "tools.convert_checkpoint", "--input",
                          str(copy), "--output", str(tmp / "out.npz")],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 2, out.stderr[-2000:]
    # The one 'Error:' line (tensorstore may print its closed-event-loop report around it).
    errors = [line for line in out.stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1, out.stderr[-3000:]
    last = errors[0]
    assert os.path.basename(node) in last and "crc-32c checksum" in last.lower(), last
    assert "tensorstore_spec" not in last
    assert "config.init_from" not in last and "NoneType" not in last, last
    assert not (tmp / "out.npz").exists()


def test_our_checksum_catches_a_changed_array_whatever_the_sharding():
    """Where the storage keeps no checksum, ours is the check: one flipped bit in one element
    changes the digest; the digest of a sharded array equals the NumPy one."""
    import jax
    import numpy as np
    from jax.sharding import NamedSharding, PartitionSpec

    values = np.random.default_rng(0).normal(size=(64, 24)).astype(np.float32)
    tree = {"params": {"w": values, "b": values[0].astype(jax.numpy.bfloat16)},
            "step": np.int32(7)}
    mesh = jax.make_mesh((8,), ("x",), axis_types=(jax.sharding.AxisType.Auto,))
    sharded = dict(tree, params=dict(tree["params"], w=jax.device_put(
        values, NamedSharding(mesh, PartitionSpec("x")))))
    assert integrity.array_digests(sharded) == integrity.array_digests(tree)
    record = integrity.record({"config": {}}, tree, None)["integrity"]
    flipped = values.copy()
    flipped.view(np.uint32)[17, 5] ^= 1 << 30
    with pytest.raises(integrity.CheckpointCorruptError, match=r"ckpt: checksum mismatch in 1 "
                       r"array\(s\) \(params/w\)"):
        integrity.verify_arrays(dict(tree, params=dict(tree["params"], w=flipped)), record,
                                "ckpt")
    integrity.verify_arrays(tree, record, "ckpt")
