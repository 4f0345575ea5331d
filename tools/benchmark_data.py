"""Input-pipeline benchmark: examples/s of a config's train loader alone (no model).

    python -m tools.benchmark_data --config FILE.py[:ARG] [--json] [--worker_count N]
        [--num_batches 20] [--warmup_batches 2] [--batch_size B] [--config.KEY=VALUE ...]

--worker_count may be a comma-separated list ("0,1,2") to measure how throughput scales with
grain worker processes. `--write_synthetic_videos DIR` instead writes textured MP4s to
DIR/<class>/ (for benchmarks/input_pipeline.py; see its docstring) and exits.
"""

from __future__ import annotations

import json
import os
import sys

from absl import app, flags

from tools import cli

flags.DEFINE_string("config", None, "Config file and variant: path/to/config.py[:arg].")
flags.DEFINE_bool("json", False, "Print one JSON object (a list with several worker counts).")
flags.DEFINE_string("worker_count", None, "grain worker processes, or a list like '0,1,2' "
                    "(default: config.data.worker_count).")
flags.DEFINE_integer("num_batches", 20, "Batches timed.")
flags.DEFINE_integer("warmup_batches", 2, "Batches read before timing.")
flags.DEFINE_integer("batch_size", 0, "Global batch size (0: config.batch_size).")
flags.DEFINE_string("write_synthetic_videos", None, "Write synthetic MP4s to this folder.")
flags.DEFINE_integer("num_videos", 16, "With --write_synthetic_videos: how many.")
flags.DEFINE_integer("seconds", 10, "With --write_synthetic_videos: length at 25 fps.")
FLAGS = flags.FLAGS
OVERRIDES: list[str] = []


def write_synthetic_videos(root: str, count: int, seconds: int) -> None:
    """Writes `count` textured 340x256 MP4s of `seconds` s at 25 fps to root/<class>/."""
    from framework.data import synthetic_media

    for index in range(count):
        folder = os.path.join(root, f"class_{index % 4}")
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, f"video_{index:04d}.mp4")
        if not os.path.exists(path):
            synthetic_media.write_video(path, num_frames=25 * seconds, height=256, width=340,
                                        fps=25, seed=index, texture=24.0)
        print(f"\r{index + 1}/{count} videos written to {root}", end="", file=sys.stderr)
    print(file=sys.stderr)


def main(argv: list[str]) -> None:
    """Runs the benchmark named by the flags and prints the result."""
    del argv
    if FLAGS.write_synthetic_videos:
        write_synthetic_videos(FLAGS.write_synthetic_videos, FLAGS.num_videos, FLAGS.seconds)
        return
    if not FLAGS.config:
        raise app.UsageError("--config is required.")
    from framework.data import benchmark

    config = cli.load_config(FLAGS.config, OVERRIDES)
    import framework.data  # noqa: F401  (registers the datasets)

    counts = ([int(c) for c in FLAGS.worker_count.split(",")] if FLAGS.worker_count
              else [None])
    results = []
    for count in counts:
        result = benchmark.measure_input_pipeline(
            config.data, FLAGS.batch_size or config.batch_size, num_batches=FLAGS.num_batches,
            warmup_batches=FLAGS.warmup_batches, seed=config.seed, worker_count=count)
        result["config"] = FLAGS.config
        result["cpu_count"] = os.cpu_count()
        results.append(result)
        if not FLAGS.json:
            print(f"{FLAGS.config}: worker_count={result['worker_count']}: "
                  f"{result['examples_per_sec']:.2f} examples/s "
                  f"({result['batches_per_sec']:.3f} batches/s of {result['batch_size']}; "
                  f"shapes {result['shapes']})", flush=True)
    if FLAGS.json:
        print(json.dumps(results[0] if len(results) == 1 else results, indent=2))


def run() -> None:
    """Entry point: sets aside --config.KEY=VALUE overrides, then runs absl."""
    from tools import cli

    rest, overrides = cli.split_overrides(sys.argv[1:])
    OVERRIDES.extend(overrides)
    app.run(lambda argv: cli.exit_on_config_error(main, argv),
            argv=[sys.argv[0]] + rest)


if __name__ == "__main__":
    run()
