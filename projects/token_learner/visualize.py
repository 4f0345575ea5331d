"""Writes the learned TokenLearner attention maps of a trained model over its input frames.

    python -m projects.token_learner.visualize --config CONFIG.py[:ARG] --workdir WORKDIR \
        --out DIR [--num_examples 4] [--data eval] [--learner 0] [--cpu_devices 8]

Reads the params of the latest checkpoint in WORKDIR (a run of CONFIG), the first
`--num_examples` examples of `config.data.<--data>`, and writes one PNG per example,
DIR/example_<i>.png: a row per frame (one image row for images; for videos the first frame
of each tubelet slice), the input in the first column and each learned token's attention
map (upsampled to the input's size, over a grey copy of the frame) in the next columns.
`--learner` picks the TokenLearner (0 = the first; with TokenFusers there is one per layer).
"""

from __future__ import annotations

import os
import sys

from absl import app, flags

flags.DEFINE_string("config", None, "Config file and variant of the run: path/to/config.py[:arg].")
flags.DEFINE_string("workdir", None, "The run's directory (its checkpoints/ are read).")
flags.DEFINE_string("out", None, "Directory for the PNG files (created if missing).")
flags.DEFINE_integer("num_examples", 4, "How many examples to draw.")
flags.DEFINE_string("data", "eval", "Which config.data entry to take the examples from.")
flags.DEFINE_integer("learner", 0, "Which TokenLearner's maps to draw (0 = the first).")
flags.DEFINE_integer("cpu_devices", 0, "If > 0, run on this many virtual CPU devices.")
FLAGS = flags.FLAGS


def attention_maps(model, params, batch: dict, learner: int = 0):
    """Runs `model` on `batch`; returns the maps of TokenLearner number `learner` as float32
    numpy (B, groups, S, L) (groups: temporal slices pooled separately; L: their positions).

    Raises ValueError when the model has no TokenLearner or fewer than learner + 1.
    """
    import jax
    import numpy as np
    from flax.traverse_util import flatten_dict

    name = learner_name(params, learner)
    run = jax.jit(lambda p, b: model.apply({"params": p}, b, train=False,
                                           mutable=["intermediates"])[1])
    state = flatten_dict(run(params, batch)["intermediates"])
    maps = np.asarray(state[("Transformer", name, "attention_maps")][0], np.float32)
    batch_size = next(iter(batch.values())).shape[0]
    return maps.reshape(batch_size, -1, *maps.shape[1:])


def learner_name(params, learner: int = 0) -> str:
    """Returns the name of TokenLearner number `learner` under params["Transformer"].

    Raises ValueError when the model has fewer than learner + 1 TokenLearners.
    """
    names = sorted((k for k in params["Transformer"] if k.startswith("TokenLearnerModule")),
                   key=lambda k: int(k.rsplit("_", 1)[-1]))
    if not 0 <= learner < len(names):
        raise ValueError(f"--learner={learner}: the model has {len(names)} TokenLearner(s) "
                         "(is config.model.tokenlearner_loc set?).")
    return names[learner]


def frames_and_grids(pixels, maps, patch_size):
    """Pairs frames with map grids for one example.

    Takes pixels (H, W, C) or (T, H, W, C), maps (groups, S, L) and the model's patch_size;
    returns (frames (R, H, W, C), maps (R, S, h, w)): one row per image / tubelet slice
    (its first frame). With maps pooled over a whole clip (groups 1, L = t * h * w), each
    slice's part of the maps is shown with that slice's frame.
    """
    import numpy as np

    pixels = np.asarray(pixels)
    if pixels.ndim == 3:
        pixels = pixels[None]
        patch_size = (1, *patch_size)
    pt, ph, pw = patch_size
    t, h, w = pixels.shape[0] // pt, pixels.shape[1] // ph, pixels.shape[2] // pw
    frames = pixels[: t * pt: pt]
    groups, num_tokens, _ = maps.shape
    grids = maps.reshape(groups, num_tokens, -1, h, w)  # (groups, S, t / groups, h, w)
    grids = grids.transpose(0, 2, 1, 3, 4).reshape(t, num_tokens, h, w)
    return frames, grids


def draw(frames, grids, path: str, title: str = "") -> None:
    """Writes a PNG at `path`: rows = frames (R, H, W, C) in [-1, 1], columns = the frame then
    each of the S maps of grids (R, S, h, w), upsampled and laid over the grey frame."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    rows, num_tokens = grids.shape[:2]
    height, width = frames.shape[1:3]
    images = np.clip((frames + 1.0) / 2.0, 0.0, 1.0)
    fig, axes = plt.subplots(rows, num_tokens + 1, squeeze=False,
                             figsize=(1.4 * (num_tokens + 1), 1.4 * rows + 0.4))
    for r in range(rows):
        grey = images[r].mean(-1)
        axes[r, 0].imshow(images[r])
        axes[r, 0].set_ylabel(f"frame row {r}", fontsize=6)
        for s in range(num_tokens):
            up = np.kron(grids[r, s], np.ones((height // grids.shape[2],
                                               width // grids.shape[3])))
            up = up / max(float(grids[:, s].max()), 1e-12)
            axes[r, s + 1].imshow(grey, cmap="gray", vmin=0, vmax=1)
            axes[r, s + 1].imshow(up, cmap="inferno", alpha=0.6, vmin=0, vmax=1)
            if r == 0:
                axes[r, s + 1].set_title(f"token {s}", fontsize=7)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        fig.suptitle(title, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def visualize(config, workdir: str, out: str, num_examples: int = 4, data: str = "eval",
              learner: int = 0) -> list[str]:
    """Draws the attention maps of the run of `config` in `workdir` on `num_examples`
    examples of config.data.<data>; returns the paths of the PNGs written under `out`."""
    import numpy as np

    from framework import config as config_lib
    from framework import pretrained, registry
    from framework.data import pipeline
    from framework.evaluators.classification import eval_data_config

    model = registry.MODELS.build(config.model.name, config_lib.kwargs_of(config.model),
                                  "config.model")
    if num_examples < 1:
        raise ValueError(f"--num_examples={num_examples} must be positive.")
    params = pretrained.unflatten(pretrained.load_flat_params(workdir, "tessera"))
    learner_name(params, learner)  # Fails early, before the data is read.
    batches = pipeline.make_eval_batches(eval_data_config(config, data), num_examples,
                                         batch_key="--num_examples")
    batch = next(iter(batches()))
    mask = np.asarray(batch.pop("mask"))
    inputs = {k: v for k, v in batch.items() if k in ("image", "video")}
    maps = attention_maps(model, params, inputs, learner)
    pixels = inputs.get("video", inputs.get("image"))
    os.makedirs(out, exist_ok=True)
    paths = []
    for i in np.flatnonzero(mask):
        frames, grids = frames_and_grids(pixels[i], maps[i], tuple(config.model.patch_size))
        label = int(batch["label"][i]) if "label" in batch else -1
        path = os.path.join(out, f"example_{i}.png")
        draw(frames, grids, path, title=f"example {i}, label {label}: attention maps of "
                                        f"TokenLearner {learner}")
        paths.append(path)
    return paths


def main(argv: list[str]) -> None:
    """Entry point: parses the flags, draws, prints the written paths."""
    del argv
    for name in ("config", "workdir", "out"):
        if not FLAGS[name].value:
            raise app.UsageError(f"--{name} is required.")
    if FLAGS.cpu_devices > 0:
        if "jax" in sys.modules:
            raise RuntimeError("--cpu_devices must be applied before JAX is imported.")
        os.environ["JAX_PLATFORMS"] = "cpu"
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_force_host_"
                                   f"platform_device_count={FLAGS.cpu_devices}").strip()
    from framework import config as config_lib

    config = config_lib.load_config(FLAGS.config)
    for path in visualize(config, FLAGS.workdir, FLAGS.out, FLAGS.num_examples, FLAGS.data,
                          FLAGS.learner):
        print(path)


if __name__ == "__main__":
    app.run(main)
