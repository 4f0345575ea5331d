"""Convert checkpoints: big_vision `.npz` / Scenic msgpack / Tessera / Hugging Face
`transformers` / timm / open_clip <-> Tessera / `.npz` / `transformers` / timm.

    # Any checkpoint -> a Tessera workdir for a config (eval it, or train on from step 0):
    python -m tools.convert_checkpoint --input vit_b16.npz --config FILE.py[:ARG] \\
        --output WORKDIR [--adapter NAME] [--source_prefix P] [--target_prefix P] \\
        [--dont_load REGEX ...] [--option KEY=VALUE ...] [--dry_run] [--config.KEY=V ...]
    # A checkpoint of Scenic's ViViT (models 1-4) -> a Tessera workdir of the same model:
    python -m tools.convert_checkpoint --input vivit_b_k400/checkpoint \
        --config projects/vivit/configs/kinetics400_vivit.py:B/16x2 \
        --adapter vivit.from_vivit --option load_head=True --output WORKDIR
    # Any checkpoint -> a params-only Tessera checkpoint (for config.init_from.path):
    python -m tools.convert_checkpoint --input checkpoint_90000 --output WORKDIR
    # A Tessera workdir (latest step) or checkpoints/<step> -> .npz (others can read ours):
    python -m tools.convert_checkpoint --input WORKDIR --output params.npz
    # Hugging Face transformers (a directory with config.json + model.safetensors: ViT,
    # SigLIP, ViViT model 1) or a timm ViT .safetensors -> Tessera, and back:
    python -m tools.convert_checkpoint --input HF_DIR --config FILE.py --output WORKDIR
    python -m tools.convert_checkpoint --input WORKDIR --output HF_DIR --output_format hf \
        [--num_frames 32]   # ViViT: the clip length the params cannot tell
    python -m tools.convert_checkpoint --input WORKDIR --output vit.safetensors  # timm

Checkpoints are read by framework.pretrained (`--input_format` auto: a directory with
config.json and model.safetensors is a transformers checkpoint, another directory a Tessera
one, `*.npz` big_vision, `*.safetensors` a timm ViT or open_clip SigLIP state dict, any other
file a Scenic/flax msgpack checkpoint; no pickle anywhere). Those are renamed to our
layout (framework.interop); their attention projections stay 2D until loaded into a model.
With `--config`, the params are mapped onto the config's model by the
same adapters as `config.init_from` (resizing position embeddings, inflating 2D kernels,
...), and the output holds a full step-0 TrainState, the data iterator's start and
config.json, so `tools.eval --workdir WORKDIR` evaluates it and `tools.train` continues
from it. `--dry_run` prints the key mapping (with --config, the load report of every model
parameter) and writes nothing. An existing output is never overwritten.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from tools import cli

FORMATS = ("auto", "tessera", "npz", "scenic", "hf", "safetensors")  # framework.pretrained.FORMATS
OUTPUT_FORMATS = ("auto", "tessera", "npz", "hf", "timm")


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    """Parses the command line; returns (flags, config overrides "KEY=VALUE")."""
    rest, overrides = cli.split_overrides(argv)
    parser = cli.ArgumentParser(prog="python -m tools.convert_checkpoint",
                                description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", required=True, help="checkpoint to read")
    parser.add_argument("--input_format", default="auto",
                        choices=FORMATS)
    parser.add_argument("--output", required=True, help="WORKDIR, a file ending in .npz or "
                        ".safetensors (timm), or a new directory (--output_format hf)")
    parser.add_argument("--output_format", default="auto", choices=OUTPUT_FORMATS,
                        help="auto: .npz -> npz, .safetensors -> timm, else tessera")
    parser.add_argument("--num_frames", type=int, default=0, help="ViViT to transformers: "
                        "the clip length in frames")
    parser.add_argument("--mlp_activation", default="gelu_tanh",
                        choices=("gelu_tanh", "gelu_exact"), help="to transformers: the "
                        "model's MLP activation (config.model.mlp_activation)")
    parser.add_argument("--layer_norm_eps", type=float, default=1e-6, help="to transformers: "
                        "the model's LayerNorm epsilon (config.model.layer_norm_eps)")
    parser.add_argument("--config", default="", help="map onto this config's model")
    parser.add_argument("--adapter", default="default", help="INIT_ADAPTERS name")
    parser.add_argument("--source_prefix", default="", help="read only the input under this")
    parser.add_argument("--target_prefix", default="", help="fill only the model under this")
    parser.add_argument("--dont_load", nargs="*", default=(), help="model keys (regexes) "
                        "left at init")
    parser.add_argument("--option", nargs="*", default=(), metavar="KEY=VALUE",
                        help="adapter options (config.init_from.options), values as Python "
                        "literals, e.g. --option load_head=True token_grid=(16,14,14)")
    parser.add_argument("--dry_run", action="store_true", help="print the mapping only")
    args = parser.parse_args(rest)
    if not args.config:
        for name in ("adapter", "target_prefix", "dont_load", "option"):
            if getattr(args, name) != parser.get_default(name):
                parser.error(f"--{name} maps onto a model: it needs --config.")
        if overrides:
            parser.error("--config.KEY=VALUE overrides need --config.")
    args.option = parse_options(args.option, parser)
    args.output_format = output_format(args.output, args.output_format)
    if args.config and args.output_format != "tessera":
        parser.error(f"--config maps onto a model for a Tessera output; a {args.output_format} "
                     "output takes the input's params as they are.")
    return args, overrides


def parse_options(items: list[str], parser: argparse.ArgumentParser) -> dict:
    """Returns {key: value} for "KEY=VALUE" items (values read as Python literals, else kept
    as strings); a malformed item is a usage error."""
    import ast

    options = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.isidentifier():
            parser.error(f"--option {item!r}: expected KEY=VALUE, e.g. load_head=True.")
        try:
            options[key] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            options[key] = text
    return options


def output_format(path: str, fmt: str) -> str:
    """Returns the output format: `fmt`, or for 'auto' the one `path`'s ending names."""
    if fmt != "auto":
        return fmt
    return {".npz": "npz", ".safetensors": "timm"}.get(os.path.splitext(path)[1], "tessera")


def check_output(path: str) -> None:
    """Raises FileExistsError when `path` is a file or a workdir that already holds
    checkpoints (nothing is overwritten)."""
    from framework.interop import hub

    if (os.path.isfile(path) or os.path.isdir(os.path.join(path, "checkpoints"))
            or hub.is_hf_dir(path)):
        raise FileExistsError(f"--output {path}: already exists; pick a new path (nothing was "
                              "written).")


def read_params(path: str, fmt: str, source_prefix: str = "") -> dict:
    """Returns the input's params as {"a/b": np.ndarray}, under `source_prefix` if given."""
    from framework import pretrained

    flat = pretrained.load_flat_params(path, fmt)
    if not source_prefix:
        return flat  # As read (another library's: with its unconverted keys).
    return pretrained.select_prefix(flat, source_prefix, "--source_prefix")


def register_interop() -> None:
    """Imports the projects whose transformers mappings (SigLIP, ViViT) the tool reads and
    writes; the plain ViT's is in framework."""
    import projects.siglip  # noqa: F401
    import projects.vivit  # noqa: F401


def mapping_table(flat: dict, output: str) -> str:
    """Returns the identity mapping of `flat` into `output` as text: key, shape, dtype."""
    width = max(len(k) for k in flat)
    lines = [f"{'input key':<{width}}  -> {output}: same key, shape, dtype"]
    for key in sorted(flat):
        lines.append(f"{key:<{width}}  {tuple(flat[key].shape)} {flat[key].dtype}")
    lines.append(f"-- {len(flat)} arrays")
    for key in getattr(flat, "unknown", ()):  # Another library's keys no rule maps.
        lines.append(f"   not converted: {key}")
    return "\n".join(lines)


def write_npz(flat: dict, path: str) -> None:
    """Writes `flat` as a big_vision-style .npz (keys '/'-joined paths)."""
    from framework import pretrained

    pretrained.save_npz(path, pretrained.unflatten(flat))


def write_params_only(flat: dict, workdir: str, source: str) -> None:
    """Writes `flat` as a Tessera checkpoint at step 0 holding only {"params": ...}: a valid
    `config.init_from.path` (format 'tessera'), not a resumable run."""
    from framework import checkpoint as checkpoint_lib
    from framework import pretrained

    checkpointer = checkpoint_lib.Checkpointer(workdir, max_to_keep=None, async_save=False)
    try:
        checkpointer.save(0, {"params": pretrained.unflatten(flat)}, None,
                          {"converted_from": os.path.abspath(source), "params_only": True})
    finally:
        checkpointer.close()


def write_foreign(flat: dict, path: str, fmt: str, **hints: Any) -> None:
    """Writes our params `flat` as a transformers directory (`fmt` 'hf'; `hints`: the
    model's mlp_activation, layer_norm_eps, num_frames (ViViT)) or a timm `.safetensors`
    state dict ('timm') at `path`; prints what was written."""
    from framework.interop import hub

    if os.path.exists(path):
        raise FileExistsError(f"--output {path}: already exists; pick a new path (nothing was "
                              "written).")
    if fmt == "hf":
        print(f"transformers model_type {hub.save_hf(flat, path, **hints)!r}")
    else:
        hub.save_timm(flat, path)


def convert_for_config(config: Any, init_from: dict, workdir: str, dry_run: bool) -> str:
    """Maps the checkpoint `init_from` names onto `config`'s model (the init_from adapters).

    Returns the load report. Unless `dry_run`, writes WORKDIR/checkpoints/0 (a fresh
    TrainState with the loaded params, the train iterator's start, the run metadata) and
    WORKDIR/config.json.
    """
    from framework import checkpoint as checkpoint_lib
    from framework import pretrained, trainer
    from framework import train_state as state_lib
    from framework.data import pipeline

    run = trainer.build(config, workdir)
    with state_lib.mesh_context(run):
        spec = state_lib.state_spec(run)
        loaded = pretrained.load_params(spec.abstract_state.params, init_from)
        report = loaded[1]
        if dry_run:
            return pretrained.format_report(report)
        state = state_lib.create_train_state(run.model, spec.tx, spec.example, spec.shardings,
                                             config.seed)
        state = pretrained.init_state_from(state, spec.shardings, init_from, spec.tx.init,
                                           loaded)
        os.makedirs(workdir, exist_ok=True)
        trainer.record_config(config, workdir)
        train_iter = iter(pipeline.make_train_loader(config.data, config.batch_size,
                                                     config.seed))
        checkpointer = checkpoint_lib.Checkpointer(workdir, max_to_keep=None, async_save=False)
        try:
            meta = checkpoint_lib.run_metadata(config.to_dict())
            meta["converted_from"] = init_from["path"]
            checkpointer.save(0, state, train_iter, meta)
        finally:
            checkpointer.close()
    return pretrained.format_report(report)


def main(argv: list[str] | None = None) -> int:
    """Converts from the command line; returns the exit status."""
    args, overrides = parse_args(sys.argv[1:] if argv is None else argv)
    if not os.path.exists(args.input):
        raise FileNotFoundError(f"--input {args.input}: no such file or folder.")
    check_output(args.output)
    cli.quiet_logs()
    register_interop()
    if args.config:
        config = cli.load_config(args.config, overrides)
        init_from = {"path": os.path.abspath(args.input), "format": args.input_format,
                     "adapter": args.adapter, "source_prefix": args.source_prefix,
                     "target_prefix": args.target_prefix, "dont_load": tuple(args.dont_load),
                     "options": args.option}
        print(convert_for_config(config, init_from, args.output, args.dry_run))
    else:
        flat = read_params(args.input, args.input_format, args.source_prefix)
        if args.dry_run:
            print(mapping_table(flat, args.output))
        elif args.output_format == "npz":
            write_npz(flat, args.output)
        elif args.output_format in ("hf", "timm"):
            write_foreign(flat, args.output, args.output_format, num_frames=args.num_frames,
                          mlp_activation=args.mlp_activation,
                          layer_norm_eps=args.layer_norm_eps)
        else:
            write_params_only(flat, args.output, args.input)
    if not args.dry_run:
        print(f"Wrote {args.output}")
    return 0


if __name__ == "__main__":
    cli.exit_on_config_error(main)
