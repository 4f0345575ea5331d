"""MTV's three fusion types train on the sharded 8-device mesh (tiny sizes, 4 steps)."""

import json

import jax
import numpy as np
import pytest

from framework import trainer
from tools import cli

CONFIG = "projects/mtv/configs/synthetic_motion_mtv.py"
FUSION_PARAM = {"test": "cross_attention_0_view0", "test_bottleneck": "bottleneck",
                "test_mlp": "mlp_fusion_0_view0"}


@pytest.mark.parametrize("variant", sorted(FUSION_PARAM))
def test_fusion_trains_on_fsdp_mesh(tmp_path_factory, variant):
    data_dir = tmp_path_factory.getbasetemp() / "mtv_data"  # Shared by the three runs.
    config = cli.load_config(f"{CONFIG}:{variant}", [
        f"data.data_dir={data_dir}", "mesh.data=2", "mesh.fsdp=4", "checkpoint_every=0",
        "checkpoint.async_save=false"])
    workdir = tmp_path_factory.mktemp(variant)
    result = trainer.train_and_evaluate(config, str(workdir))

    with open(workdir / "metrics.jsonl") as f:
        losses = [r["train/loss"] for r in map(json.loads, f) if "train/loss" in r]
    assert len(losses) == 4 and np.all(np.isfinite(losses))
    fusion = result.state.params["MultiviewEncoder"][FUSION_PARAM[variant]]
    leaves = jax.tree.leaves(fusion)
    assert all(np.all(np.isfinite(np.asarray(x))) for x in leaves)
    # FSDP: the largest fusion leaf is split over the 4 fsdp devices.
    big = max(leaves, key=lambda x: x.size)
    assert big.addressable_shards[0].data.size == big.size // 4, (variant, big.shape)
