"""Convert videos, images or image-text pairs into ArrayRecord shards for the `array_record`
dataset (layout: framework/data/prepared.py).

    python -m tools.prepare_dataset videos --input ROOT_OR_CSV --split train --output DIR \\
        [--video_root DIR] [--fps 25] [--short_side 256] [--upscale] [--jpeg_quality 90]
    python -m tools.prepare_dataset images --input ROOT --split train --output DIR \\
        [--short_side 0]
    python -m tools.prepare_dataset image_text --input PAIRS.csv|PAIRS.jsonl|SHARD.tar ... \\
        --split train --output DIR [--train_sentencepiece VOCAB_SIZE]

Common flags: --num_shards (0: automatic), --workers (processes; default: all cores),
--overwrite (replace a split prepared from other inputs; otherwise that is an error).

Videos: a folder `ROOT/<class>/<file>.mp4`, a Kinetics CSV (label, youtube_id, time_start,
time_end, split) or an Epic-Kitchens-100 annotation CSV (EPIC_100_train.csv /
EPIC_100_validation.csv: each action segment cut from start to stop timestamp, with int
verb_label and noun_label; see framework/data/epic_kitchens_inputs.py), with the videos under
--video_root (default: the CSV's folder; Epic-Kitchens' `<participant>/videos/<id>.MP4` or
`<id>.mp4` anywhere below it). Frames are
stored as JPEGs at --fps (0: the source rate) with the short side --short_side (0: as is).
--short_side only shrinks: smaller inputs keep their size unless --upscale is given.
Images: `ROOT/<class>/*.jpg` (kept as they are unless --short_side is set). Image-text: CSV
or JSONL with "image" (path relative to the file) and "caption", or webdataset tar shards
(KEY.jpg + KEY.txt). Inputs that cannot be decoded are skipped and listed in
DIR/<split>_report.json; an interrupted run resumes where it stopped when run again.
"""

from __future__ import annotations

import argparse
import os
import sys

from framework.data import converter, epic_kitchens_inputs, inputs, prepared
from tools import cli

AUTO_SHARD_SIZE = {"video": 128, "video_verb_noun": 128, "image": 1024, "image_text": 1024}


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Returns the parsed command line (see the module docstring)."""
    parser = cli.ArgumentParser(prog="python -m tools.prepare_dataset",
                                description=__doc__.split("\n\n")[0])
    kinds = parser.add_subparsers(dest="kind", required=True)
    for kind in ("videos", "images", "image_text"):
        sub = kinds.add_parser(kind)
        sub.add_argument("--input", nargs="+", required=True,
                         help="folder, CSV, JSONL or tar shard(s)")
        sub.add_argument("--output", required=True, help="dataset directory to write")
        sub.add_argument("--split", required=True, help="split name, e.g. train or eval")
        sub.add_argument("--short_side", type=int, default=256 if kind == "videos" else 0,
                         help="shrink so the short side is this (0: keep the size; a smaller "
                         "input keeps its size unless --upscale)")
        sub.add_argument("--upscale", action="store_true",
                         help="also enlarge inputs smaller than --short_side")
        sub.add_argument("--jpeg_quality", type=int, default=90)
        sub.add_argument("--num_shards", type=int, default=0, help="0: automatic")
        sub.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                         help="worker processes (1: convert in this process)")
        sub.add_argument("--overwrite", action="store_true",
                         help="replace this split if it was prepared from other inputs")
        if kind == "videos":
            sub.add_argument("--video_root", default=None,
                             help="where a Kinetics or Epic-Kitchens CSV's videos are "
                             "(default: the CSV's folder)")
            sub.add_argument("--fps", type=float, default=0.0,
                             help="frames per second to store (0: the source rate)")
        if kind == "image_text":
            sub.add_argument("--train_sentencepiece", type=int, default=0, metavar="VOCAB_SIZE",
                             help="also train a SentencePiece model on the captions")
    return parser.parse_args(argv)


def list_items(args: argparse.Namespace, class_names: list[str] | None
               ) -> tuple[str, list[dict], list[str]]:
    """Returns (record kind, items, class names) for the command line's inputs."""
    source = args.input[0]
    if args.kind == "image_text":
        return "image_text", inputs.image_text_items(args.input), []
    if len(args.input) != 1:
        raise ValueError(f"{args.kind}: give one --input (a folder or a CSV).")
    if args.kind == "images":
        return "image", *inputs.class_folder_items(source, inputs.IMAGE_EXTENSIONS, class_names)
    if source.endswith(".csv"):
        root = args.video_root or os.path.dirname(os.path.abspath(source))
        if not os.path.isdir(root):
            raise ValueError(f"--video_root {root}: not a directory.")
        if epic_kitchens_inputs.is_epic_kitchens_csv(source):
            return "video_verb_noun", *epic_kitchens_inputs.epic_kitchens_items(
                source, root, inputs.VIDEO_EXTENSIONS, class_names)
        return "video", *inputs.kinetics_items(source, root, args.split)
    return "video", *inputs.class_folder_items(source, inputs.VIDEO_EXTENSIONS, class_names)


def train_sentencepiece(captions: list[str], vocab_size: int, out_dir: str,
                        overwrite: bool) -> str:
    """Trains a unigram SentencePiece model of `vocab_size` pieces on `captions`; returns
    the .model path (out_dir/sentencepiece_<vocab_size>.model, with its .vocab).

    Refuses to replace one unless `overwrite`. Raises ValueError, writing no model, when the
    captions are too few for `vocab_size` pieces (the message names the size they allow).
    """
    import sentencepiece

    prefix = os.path.join(out_dir, f"sentencepiece_{vocab_size}")
    if os.path.exists(prefix + ".model") and not overwrite:
        raise FileExistsError(f"{prefix}.model exists; pass --overwrite to replace it.")
    trial = os.path.join(out_dir, f".sentencepiece_{vocab_size}.tmp-{os.getpid()}")
    try:
        sentencepiece.SentencePieceTrainer.train(
            sentence_iterator=iter(captions), model_prefix=trial, vocab_size=vocab_size,
            model_type="unigram", character_coverage=1.0, hard_vocab_limit=False,
            pad_id=0, unk_id=1, bos_id=-1, eos_id=2, minloglevel=2)
        pieces = sentencepiece.SentencePieceProcessor(model_file=trial + ".model").vocab_size()
        if pieces < vocab_size:
            raise ValueError(f"--train_sentencepiece {vocab_size}: the {len(captions)} captions "
                             f"allow only {pieces} pieces, so no model was written (the split "
                             f"was); run again with --train_sentencepiece {pieces} or fewer, "
                             "or with more captions.")
        for ext in (".model", ".vocab"):
            os.replace(trial + ext, prefix + ext)
    finally:
        for ext in (".model", ".vocab"):
            if os.path.exists(trial + ext):
                os.remove(trial + ext)
    return prefix + ".model"


def main(argv: list[str]) -> int:
    """Runs the conversion; returns the exit status (0: done, 2: bad input, said in one
    'Error:' line)."""
    args = parse_args(argv)
    try:
        info = prepared.read_info(args.output) if os.path.isdir(args.output) else None
        kind, items, class_names = list_items(args, info and info.get("class_names"))
        params = {"short_side": args.short_side, "jpeg_quality": args.jpeg_quality,
                  "fps": getattr(args, "fps", 0.0), "upscale": args.upscale}
        shards = args.num_shards or -(-len(items) // AUTO_SHARD_SIZE[kind])
        print(f"{args.split}: converting {len(items)} inputs into {shards} shards in "
              f"{args.output} with {args.workers} workers", file=sys.stderr)
        split_info = converter.convert_split(
            args.output, args.split, kind, items, params, class_names=class_names,
            num_shards=shards, workers=args.workers, overwrite=args.overwrite)
        if getattr(args, "train_sentencepiece", 0):
            captions = [item["caption"] for item in items if "error" not in item]
            path = train_sentencepiece(captions, args.train_sentencepiece, args.output,
                                       args.overwrite)
            print(f"SentencePiece model of {args.train_sentencepiece} pieces: {path}",
                  file=sys.stderr)
    except (ValueError, OSError) as e:
        print(f"Error: {e}", file=sys.stderr)
        return 2
    report = os.path.join(args.output, prepared.report_name(args.split))
    print(f"{args.split}: {split_info['num_examples']} examples written, "
          f"{split_info['num_skipped']} inputs skipped (listed in {report}).", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
