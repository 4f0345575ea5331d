"""Params and GFLOPs per view of configs' models, beside the papers' numbers.

    python -m tools.model_table 'projects/*/configs/*.py' configs/synthetic_shapes_vit.py:test
        [--json]

Each argument is a config `FILE.py[:ARG]` or a glob of files; a file without `:ARG` expands
to every entry of its VARIANTS (or to get_config() when it has none). Models are built
abstractly (jax.eval_shape) from `config.model_input`, so ViT-H sized models take seconds.
GFLOPs count a multiply-add once, per example (per view for video), as papers do. Output: a
Markdown table (for project READMEs) with ours / reference ratios, or with --json a list of
{"config", "arg", "params", "gflops_per_view", "ref_params", "ref_gflops"}. A config that
fails to build is reported on stderr after the table (exit status 1); with --json the
first failure stops the tool.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys
from typing import Any

from tools import cli


def expand_specs(specs: list[str]) -> list[tuple[str, str | None]]:
    """Turns config arguments (files, FILE.py:ARG, globs) into a list of (path, arg).

    Raises FileNotFoundError for a pattern or file that matches nothing.
    """
    from framework import config as config_lib

    out = []
    for spec in specs:
        path, arg = config_lib.split_spec(spec)
        paths = sorted(glob.glob(path)) if glob.has_magic(path) else [path]
        paths = [p for p in paths if os.path.basename(p) != "__init__.py"]
        if not paths or not all(os.path.isfile(p) for p in paths):
            raise FileNotFoundError(f"{spec}: no config file matches (expected "
                                    "path/to/config.py[:arg] or a glob of such files).")
        for one in paths:
            if arg is not None:
                out.append((one, arg))
                continue
            variants = getattr(config_lib.load_module(one), "VARIANTS", None) or (None,)
            out.extend((one, v) for v in variants)
    return out


def model_input_of(config: Any) -> dict:
    """Returns `config.model_input`, or when it is empty the train dataset's features
    ({key: "dtype[shape]"}) read from its spec (which may prepare a synthetic dataset)."""
    if config.model_input:
        return dict(config.model_input)
    from framework.data import pipeline

    features = pipeline.build_dataset(config.data, "train").info.get("features") or {}
    if not features:
        raise ValueError("config.model_input is empty and the train dataset lists no "
                         "features; set config.model_input, e.g. {'image': "
                         "'float32[224,224,3]'}.")
    return {k: f"{f['dtype']}[{','.join(str(d) for d in f['shape'])}]"
            for k, f in features.items()}


def model_row(path: str, arg: str | None) -> dict:
    """Builds the config's model abstractly; returns {"config", "arg", "params",
    "gflops_per_view", "ref_params", "ref_gflops"} (reference values None when absent)."""
    import framework.models  # noqa: F401  (registers the shared models)
    from framework import config as config_lib
    from framework import flops, registry

    spec = path if arg is None else f"{path}:{arg}"
    config = cli.load_config(spec)
    model = registry.MODELS.build(config.model.name, config_lib.kwargs_of(config.model),
                                  "config.model")
    params, gflops = flops.model_cost(model, model_input_of(config))
    reference = config.get("reference") or {}
    return {
        "config": path, "arg": arg, "params": int(params), "gflops_per_view": float(gflops),
        "ref_params": reference.get("params"), "ref_gflops": reference.get("gflops"),
    }


def _ratio(ours: float, ref: float | None) -> str:
    return f"{ours / ref:.3f}" if ref else "-"


MARKDOWN_HEADER = ("| config | params (M) | paper (M) | ratio | GFLOPs/view | paper | ratio |\n"
                   "|---|---|---|---|---|---|---|")


def markdown_row(r: dict) -> str:
    """Returns one Markdown table row (see MARKDOWN_HEADER) for a `model_row` result: params
    (M) and GFLOPs, each beside the reference and the ratio ours / reference."""
    name = r["config"] + (f":{r['arg']}" if r["arg"] else "")
    ref_p, ref_g = r["ref_params"], r["ref_gflops"]
    return " | ".join([
        f"| `{name}`", f"{r['params'] / 1e6:.2f}",
        "-" if not ref_p else f"{ref_p / 1e6:.2f}", _ratio(r["params"], ref_p),
        f"{r['gflops_per_view']:.2f}", "-" if not ref_g else f"{ref_g:.2f}",
        _ratio(r["gflops_per_view"], ref_g) + " |"])


def main(argv: list[str] | None = None) -> int:
    """Prints the table for the configs on the command line; returns the exit status."""
    parser = cli.ArgumentParser(prog="python -m tools.model_table", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("configs", nargs="+", help="FILE.py[:ARG] or a glob of files")
    parser.add_argument("--json", action="store_true", help="print a JSON list")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    specs = expand_specs(args.configs)
    if args.json:
        print(json.dumps([model_row(path, arg) for path, arg in specs], indent=1))
        return 0
    print(MARKDOWN_HEADER, flush=True)
    failed = []
    for path, arg in specs:  # Row by row: a long list of big models shows progress.
        try:
            print(markdown_row(model_row(path, arg)), flush=True)
        except Exception as e:  # noqa: BLE001 - one broken config must not hide the others.
            failed.append(f"{path}:{arg}: {type(e).__name__}: {e}")
    for line in failed:
        print(f"Error: {line}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    cli.exit_on_config_error(main)
