"""Input-pipeline benchmark config: Kinetics-style 32x224x224 training clips (ViViT's train
preprocessing) read from ArrayRecord shards of JPEG frames. Only `config.data` and
`config.batch_size` are used (tools/benchmark_data.py builds no model).

Reproduce (results in benchmarks/input_pipeline.md and .json):

    python -m tools.benchmark_data --write_synthetic_videos /tmp/bench_videos \\
        --num_videos 16 --seconds 10
    python -m tools.prepare_dataset videos --input /tmp/bench_videos --split train \\
        --output /tmp/bench_prepared --short_side 256 --fps 25
    python -m tools.benchmark_data --config benchmarks/input_pipeline.py \\
        --config.data.train.path=/tmp/bench_prepared --worker_count 0,1,2 --json

The synthetic videos are 340x256 at 25 fps with textured frames (JPEG ~ natural image size);
a clip is 32 frames at stride 2 from a random start, resized to short side 256, scale
jittered (0.9-1.33) and randomly cropped to 224x224 (the fused scale_jitter_crop op), flipped
and scaled to [-1, 1] (float32).
"""

import ml_collections

from configs import trainer_defaults

TRAIN_PREPROCESS = ("sample_frames(32, stride=2)|decode_frames|resize_small(256)|"
                    "scale_jitter_crop(224, 0.9, 1.33)|flip_lr|value_range(-1, 1)")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """Returns the benchmark config (`arg` is unused)."""
    del arg
    c = trainer_defaults.get_config()
    c.batch_size = 8
    c.model.name = "vivit.classifier"  # Not built: the data benchmark has no model.
    c.data.worker_count = 2
    c.data.train = ml_collections.ConfigDict(dict(
        name="array_record", path="/tmp/bench_prepared", split="train",
        preprocess=TRAIN_PREPROCESS))
    c.model_input = ml_collections.ConfigDict({"video": "float32[32,224,224,3]"})
    return c
