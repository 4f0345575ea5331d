"""MTV-B on Something-Something v2 and Epic-Kitchens-100: the configs follow Scenic's
ssv2_mtv_b2_cva / epic_mtv_b2_cva (values checked by hand against them), Epic-Kitchens is
scored by the ViViT verb / noun / action pieces, and a Kinetics MTV checkpoint of 32-frame
clips initialises a model of longer clips (class tokens and global position embedding
resized in time; only the head new)."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen as nn

from framework import pretrained
from projects.mtv.model import MTV
from tools import cli

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load(name: str):
    return cli.load_config(os.path.join(ROOT, "projects", "mtv", "configs", name))


# name: (classes, frames, epochs, batch, train size, mixup, RandAugment, test crop op,
# evaluator), Scenic's values (label smoothing 0.2, lr 0.2, stochastic depth 0.1 in both).
SCENIC = {
    "ssv2_mtv.py": (174, 48, 60, 256, 168_913, "mixup(alpha=0.3)", "randaugment(1, 15)",
                    "three_crop(224)", "multiview_classification"),
    "epic_kitchens_mtv.py": (397, 64, 80, 128, 67_217, "", "randaugment(3, 10)",
                             "center_crop(224)", "vivit.epic_kitchens_multiview"),
}


@pytest.mark.parametrize("name", sorted(SCENIC))
def test_recipe_as_scenics_config(name):
    classes, frames, epochs, batch, size, mixup, augment, crop, evaluator = SCENIC[name]
    c = load(name)
    steps_per_epoch = size // batch
    assert c.model.num_classes == classes and c.model.stochastic_depth == 0.1
    assert tuple(c.model.fusion_layers) == (5, 11) and c.model.use_query_config is False
    assert (c.optimizer.name, c.optimizer.lr, c.optimizer.momentum) == ("sgd", 0.2, 0.9)
    assert (c.optimizer.weight_decay, c.optimizer.grad_clip_norm) == (0.0, 1.0)
    assert c.batch_size == batch and c.total_steps == epochs * steps_per_epoch
    assert c.schedule.warmup_steps == int(2.5 * steps_per_epoch)
    assert c.loss.label_smoothing == 0.2
    train, test = c.data.train.preprocess, c.data.eval.preprocess
    assert f"sample_frames({frames}, stride=1)|decode_frames|resize_small(256)|" \
           f"scale_jitter(0.9, 1.33)|random_crop(224)|flip_lr|{augment}|value_range" in train
    assert "color_augment" not in train  # Scenic runs RandAugment alone when both are on.
    assert f"sample_clips({frames}, stride=1, num_clips=4)" in test
    assert f"resize_small(256)|{crop}|value_range(-1, 1)" in test
    assert c.data.train.get("batch_preprocess", "") == mixup
    assert [e.get("name", k) for k, e in c.evaluators.items()] == [evaluator]
    assert c.model_input.video == f"float32[{frames},224,224,3]"
    # Fine-tuned from an MTV checkpoint by name; the head is new.
    assert tuple(c.init_from.options.view_paths) == ()
    assert tuple(c.init_from.dont_load) == ("^output_projection/",)
    assert c.reference.params == 310_000_000 and "gflops" not in c.reference


def test_epic_kitchens_uses_the_vivit_verb_noun_pieces():
    c = load("epic_kitchens_mtv.py")
    assert c.data.train.preprocess.startswith("vivit.verb_noun_targets(97, 300)|")
    assert (c.loss.name, c.loss.num_verbs, c.loss.num_nouns) == (
        "vivit.epic_kitchens_xent", 97, 300)
    assert c.evaluators.epic_kitchens_multiview.num_verbs == 97
    assert c.reference.action_top1 == 46.7 and c.reference.views == "4x1"


def tiny_mtv() -> MTV:
    views = (dict(hidden_size=8, depth=2, mlp_dim=16, num_heads=2, tubelet=(4, 4, 4)),
             dict(hidden_size=16, depth=2, mlp_dim=32, num_heads=2, tubelet=(2, 4, 4)))
    return MTV(num_classes=3, views=views, fusion_layers=(0, 1),
               global_encoder=dict(depth=1, mlp_dim=32, num_heads=2))


def abstract_params(model: MTV, frames: int) -> dict:
    video = {"video": jnp.zeros((1, frames, 16, 16, 3))}
    return nn.unbox(jax.eval_shape(lambda: model.init(jax.random.key(0), video)))["params"]


def test_a_32_frame_mtv_checkpoint_initialises_longer_clips(tmp_path):
    model = tiny_mtv()
    rng = np.random.default_rng(0)
    short = jax.tree.map(lambda s: rng.normal(0, 0.2, s.shape).astype(s.dtype),
                         abstract_params(model, 8))
    path = str(tmp_path / "mtv_8_frames.npz")
    pretrained.save_npz(path, short)
    target = abstract_params(model, 12)
    init_from = dict(path=path, adapter="mtv.from_vit", options=dict(view_paths=()),
                     dont_load=("^output_projection/",))
    loaded, report = pretrained.load_params(target, init_from)

    notes = {key: note for key, note, *_ in report.rows}
    resized = {k for k, n in notes.items() if n.startswith("resized in time")}
    assert resized == {"cls_view0", "cls_view1", "global_posembed"}
    assert {k for k, n in notes.items() if n.startswith("init")} == {
        "output_projection/kernel", "output_projection/bias"}
    assert all(n == "loaded" for k, n in notes.items()
               if k not in resized and not k.startswith("output_projection"))
    assert report.unused == ["output_projection/bias", "output_projection/kernel"]

    # Class tokens: (1, 2, 1, 8) -> (1, 3, 1, 8), linear in time (the ends' mean in the middle).
    old, new = short["cls_view0"][0, :, 0], np.asarray(loaded["cls_view0"])[0, :, 0]
    assert new.shape == (3, 8)
    np.testing.assert_allclose(new[1], old.mean(0), rtol=1e-5, atol=1e-6)
    # Global position embedding: the class token's position kept, 4 frames -> 6.
    old, new = short["global_posembed"], np.asarray(loaded["global_posembed"])
    assert old.shape[1] == 1 + 4 and new.shape[1] == 1 + 6
    np.testing.assert_array_equal(new[:, 0], old[:, 0])
    np.testing.assert_allclose(new[:, 1:].mean(1), old[:, 1:].mean(1), rtol=1e-4, atol=1e-5)
    # The view position embeddings cover one segment, which is as long at either length.
    np.testing.assert_array_equal(loaded["MultiviewEncoder"]["posembed_view1"],
                                  short["MultiviewEncoder"]["posembed_view1"])
