"""ViViT evaluation: multi-view (2 clips x 3 crops) averaging, Epic-Kitchens heads."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

import projects.vivit  # noqa: F401  (registers the model, loss, evaluator and op)
from framework import registry, sharding
from framework.data import pipeline
from framework.evaluators.multiview import ViewAverager
from projects.vivit.evaluators import action_metrics

NUM_EVAL = 6
MOTION = {"name": "synthetic_motion", "num_train": 8, "num_eval": NUM_EVAL, "num_frames": 8,
          "image_size": 16}
# Clips of 4 frames from 8: starts 0 and 4; crops of 12 from 16x16: left 0, 2, 4, top 2.
VIEWS_PP = "sample_clips(4, num_clips=2, key='video')|three_crop(12)"


def config_for(tmp_path):
    c = ml_collections.ConfigDict({"batch_size": 8})
    c.data = ml_collections.ConfigDict(dict(
        data_dir=str(tmp_path), worker_count=0, train=dict(MOTION, split="train"),
        eval=dict(MOTION, split="eval", preprocess=VIEWS_PP)))
    return c


@pytest.mark.parametrize("average", [None, "softmax"])
def test_multiview_2x3_equals_average_of_six_views_by_hand(tmp_path, average):
    config = config_for(tmp_path)
    model = registry.MODELS.get("vivit.classifier")(
        variant="factorised_encoder", num_classes=4, patch_size=(2, 4, 4), hidden_size=16,
        depth=1, mlp_dim=32, num_heads=2, temporal_depth=1, head_zeroinit=False)
    params = model.init(jax.random.key(0), {"video": jnp.zeros((1, 4, 12, 12, 3))})["params"]
    params = jax.tree.map(lambda p: p * 3.0, params)  # Sharper, view-dependent scores.
    mesh = sharding.make_mesh({"data": -1, "fsdp": 1, "tensor": 1})
    keys = {"topk": (1, 2)} if average is None else {"topk": (1, 2), "average": average}
    evaluator = registry.EVALUATORS.build("multiview_classification", keys,
                                          "config.evaluators.multiview_classification",
                                          model=model, config=config, mesh=mesh)
    with jax.set_mesh(mesh):
        result = evaluator.run({"params": params})
        averager = ViewAverager()
        for local in evaluator.batches():
            out = evaluator._step({"params": params}, sharding.shard_batch(local, mesh))
            averager.add(out["video_index"], out["scores"], out["label"],
                         np.asarray(out["mask"], bool))
    _, pipeline_mean, _ = averager.mean_scores()

    spec = pipeline.build_dataset(config.data, "eval")
    videos = [spec.decode(spec.source[i]) for i in range(NUM_EVAL)]
    views = np.stack([v["video"][start:start + 4, 2:14, left:left + 12]
                      for v in videos for start in (0, 4) for left in (0, 2, 4)])
    logits = model.apply({"params": params}, {"video": jnp.asarray(views)})
    scores = jax.nn.softmax(logits) if average == "softmax" else logits  # Default: logits.
    by_hand = np.asarray(scores).reshape(NUM_EVAL, 6, -1).mean(axis=1)
    labels = np.array([int(v["label"]) for v in videos])

    np.testing.assert_allclose(pipeline_mean, by_hand, atol=1e-5)
    assert result["count"] == NUM_EVAL and result["views_per_video"] == 6
    assert result["top1"] == pytest.approx(np.mean(by_hand.argmax(-1) == labels))
    top2 = np.argsort(-by_hand, axis=-1)[:, :2]
    assert result["top2"] == pytest.approx(np.mean(np.any(top2 == labels[:, None], axis=-1)))


def test_epic_kitchens_loss_and_action_accuracy():
    loss_fn = registry.LOSSES.build("vivit.epic_kitchens_xent", {"num_verbs": 3, "num_nouns": 4},
                                    "config.loss")
    logits = jnp.asarray(np.random.default_rng(0).normal(size=(2, 7)), jnp.float32)
    batch = {"verb_label": jnp.array([0, 2]), "noun_label": jnp.array([3, 1])}
    verb = -jax.nn.log_softmax(logits[:, :3])[jnp.arange(2), batch["verb_label"]]
    noun = -jax.nn.log_softmax(logits[:, 3:])[jnp.arange(2), batch["noun_label"]]
    want = jnp.mean(verb + noun) / 2  # The two heads averaged, as Scenic.
    loss, metrics = loss_fn(logits, batch)
    np.testing.assert_allclose(loss, want, rtol=1e-6)
    np.testing.assert_allclose(metrics["verb_loss"], jnp.mean(verb), rtol=1e-6)
    np.testing.assert_allclose(metrics["noun_loss"], jnp.mean(noun), rtol=1e-6)
    op = registry.PREPROCESS_OPS.get("vivit.verb_noun_targets")(num_verbs=3, num_nouns=4)
    two_hot = np.stack([op({"verb_label": v, "noun_label": n}, None)["label"]
                        for v, n in zip([0, 2], [3, 1])])
    np.testing.assert_allclose(loss_fn(logits, {"label": jnp.asarray(two_hot)})[0], want,
                               rtol=1e-6)

    verbs, nouns = ViewAverager(), ViewAverager()
    video = np.array([0, 0, 1, 1])
    verb_scores = np.array([[.9, .1, 0], [.7, .3, 0], [.1, .8, .1], [.1, .8, .1]])
    noun_scores = np.array([[0, 0, 1.], [0, .6, .4], [1., 0, 0], [1., 0, 0]])
    mask = np.ones(4, bool)
    verbs.add(video, verb_scores, np.array([0, 0, 1, 1]), mask)
    nouns.add(video, noun_scores, np.array([1, 1, 0, 0]), mask)
    # Video 0: verb right, noun wrong (mean noun scores favour 2); video 1: both right.
    out = action_metrics(verbs, nouns, (1,))
    assert (out["verb_top1"], out["noun_top1"], out["action_top1"]) == (1.0, 0.5, 0.5)
