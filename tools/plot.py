"""Training curves from workdirs' metrics.jsonl as one PNG, several runs on the same axes.

    python -m tools.plot WORKDIR [WORKDIR ...] --out curves.png [--metrics NAME ...]
        [--labels NAME ...]

Default panels: train/loss, train/lr, accuracy (every eval/<evaluator>/top1 the runs
logged, one line per run and evaluator) and train/examples_per_sec. `--metrics` plots the
named metrics instead (exact names, or a trailing '*' for a prefix such as 'eval/*').
A resumed run logs some steps twice; the later value is kept.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import math
import os
import sys

from tools import cli

DEFAULT_PANELS = (("loss", ("train/loss",)), ("learning rate", ("train/lr",)),
                  ("accuracy", ("eval/*/top1",)), ("examples/s", ("train/examples_per_sec",)))


def read_metrics(workdir: str) -> dict[str, dict[int, float]]:
    """Returns {metric name: {step: value}} from WORKDIR/metrics.jsonl (null values skipped;
    a step logged twice keeps its last value). Raises FileNotFoundError when it is missing."""
    path = os.path.join(workdir, "metrics.jsonl")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{workdir}: no metrics.jsonl (is it a Tessera workdir?).")
    series: dict[str, dict[int, float]] = {}
    with open(path) as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{number}: not a JSON line ({e}).") from None
            step = row.pop("step", None)
            for name, value in row.items():
                if isinstance(value, int | float) and step is not None:
                    series.setdefault(name, {})[int(step)] = float(value)
    return series


def plot_runs(runs: dict[str, dict[str, dict[int, float]]], out: str,
              panels=DEFAULT_PANELS) -> list[str]:
    """Draws `panels` ((title, metric patterns)) for `runs` ({label: read_metrics(...)})
    into the PNG `out`; returns the metric names drawn (panels with no data say so)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    cols = 2 if len(panels) > 1 else 1
    rows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(6.5 * cols, 4 * rows), squeeze=False)
    drawn = []
    for ax, (title, patterns) in zip(axes.flat, panels):
        lines = 0
        several = len(patterns) > 1 or any("*" in p for p in patterns)
        for label, series in runs.items():
            names = sorted(n for n in series if any(fnmatch.fnmatch(n, p) for p in patterns))
            for name in names:
                steps = sorted(series[name])
                ax.plot(steps, [series[name][s] for s in steps],
                        marker="." if len(steps) < 30 else None,
                        label=f"{label} {name}" if several else label)
                drawn.append(name)
                lines += 1
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        if lines:
            ax.legend(fontsize=8)
        else:
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return sorted(set(drawn))


def main(argv: list[str] | None = None) -> int:
    """Plots from the command line; returns the exit status."""
    parser = cli.ArgumentParser(prog="python -m tools.plot", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("workdirs", nargs="+", help="run directories with metrics.jsonl")
    parser.add_argument("--out", required=True, help="PNG file to write")
    parser.add_argument("--metrics", nargs="*", default=None,
                        help="metric names or patterns, one panel each (default: loss, lr, "
                        "accuracy, examples/s)")
    parser.add_argument("--labels", nargs="*", default=None, help="one legend label per run")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    labels = args.labels or [os.path.basename(os.path.normpath(w)) for w in args.workdirs]
    if len(labels) != len(args.workdirs):
        parser.error(f"--labels: {len(labels)} labels for {len(args.workdirs)} workdirs.")
    if len(set(labels)) != len(labels):
        labels = [os.path.normpath(w) for w in args.workdirs]
    runs = {label: read_metrics(w) for label, w in zip(labels, args.workdirs)}
    panels = DEFAULT_PANELS if not args.metrics else tuple((m, (m,)) for m in args.metrics)
    drawn = plot_runs(runs, args.out, panels)
    if not drawn:
        print(f"Error: none of the metrics were logged in {', '.join(args.workdirs)}.",
              file=sys.stderr)
        return 2
    print(f"Wrote {args.out} ({', '.join(drawn)})")
    return 0


if __name__ == "__main__":
    cli.exit_on_config_error(main)
