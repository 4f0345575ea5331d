"""Converts a list of input items into the ArrayRecord shards of one split, in parallel
worker processes, resumably (see framework.data.prepared for the layout).

Items are split into `num_shards` contiguous shards. Workers decode and encode the items
(framework.data.inputs.convert_item); this process writes each shard under a temporary name,
renames it when complete and leaves a done-marker, so a re-run skips finished shards. Inputs
that cannot be converted are skipped, counted and listed in `<split>_report.json`. Existing
output made from other inputs or settings is never replaced without `overwrite=True`.
"""

from __future__ import annotations

import datetime
import glob
import hashlib
import json
import multiprocessing
import os
import sys
import time
from typing import TextIO

from framework.data import cache, inputs, prepared, records


def fingerprint(kind: str, items: list[dict], params: dict) -> str:
    """Returns a hex digest identifying the conversion of `items` with `params`."""
    text = json.dumps({"kind": kind, "items": items, "params": params}, sort_keys=True)
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def convert_one(task: tuple[str, dict, dict]) -> tuple[bool, object, object]:
    """Worker: (kind, item, params) -> (True, record bytes, [classes it counts towards]) or
    (False, item name, reason it was skipped)."""
    kind, item, params = task
    try:
        record = inputs.convert_item(kind, item, params)
        return True, records.encode_example(record), inputs.counted_classes(item)
    except Exception as e:  # noqa: BLE001 - any failure skips (and reports) this input.
        return False, item["name"], f"{type(e).__name__}: {e}"


class ProgressLine:
    """Prints "<label>: done/total (pct) | skipped | items/s | ETA" at most every `every`
    seconds ('\\r'-updated on a terminal, one line per update otherwise)."""

    def __init__(self, label: str, total: int, done: int, stream: TextIO, every: float = 0.5):
        self.label, self.total, self.stream, self.every = label, total, stream, every
        self.start_done, self.start = done, time.perf_counter()
        self.last = 0.0
        self.tty = getattr(stream, "isatty", lambda: False)()

    def update(self, done: int, skipped: int, force: bool = False) -> None:
        """Reports that `done` items (of which `skipped` were skipped) are finished."""
        now = time.perf_counter()
        if not force and now - self.last < (self.every if self.tty else 10 * self.every):
            return
        self.last = now
        rate = (done - self.start_done) / max(now - self.start, 1e-9)
        eta = datetime.timedelta(seconds=round((self.total - done) / rate)) if rate else "?"
        line = (f"{self.label}: {done}/{self.total} ({100 * done / max(self.total, 1):.1f}%) | "
                f"{skipped} skipped | {rate:.1f} items/s | ETA {eta}")
        self.stream.write(("\r" + line) if self.tty else (line + "\n"))
        self.stream.flush()

    def close(self) -> None:
        """Ends the line on a terminal."""
        if self.tty:
            self.stream.write("\n")


def convert_split(out_dir: str, split: str, kind: str, items: list[dict], params: dict, *,
                  class_names: list[str], num_shards: int, workers: int,
                  overwrite: bool = False, stream: TextIO | None = None) -> dict:
    """Converts `items` into the shards of `split` in `out_dir` and records the split in
    dataset_info.json. Returns the split's info ({"num_examples", "shards", "class_counts",
    "num_skipped", "fingerprint", "params"}).

    Progress goes to `stream` (default: sys.stderr). Raises FileExistsError (before
    converting anything) when out_dir holds this split made
    from other inputs or settings, unless `overwrite`; ValueError when nothing converted.
    """
    if not items:
        raise ValueError(f"split {split!r}: no inputs to convert.")
    stream = stream or sys.stderr
    num_shards = max(1, min(int(num_shards), len(items)))
    os.makedirs(out_dir, exist_ok=True)
    digest = fingerprint(kind, items, params)
    state = {"fingerprint": digest, "num_shards": num_shards}
    _check_existing(out_dir, split, state, overwrite)
    cache.write_text_atomically(_state_path(out_dir, split), json.dumps(state))

    bounds = [len(items) * i // num_shards for i in range(num_shards + 1)]
    markers = [_read_marker(out_dir, split, i, num_shards, digest) for i in range(num_shards)]
    pending = [i for i in range(num_shards) if markers[i] is None]
    done = sum(bounds[i + 1] - bounds[i] for i in range(num_shards) if markers[i] is not None)
    skipped = sum(len(m["skipped"]) for m in markers if m is not None)
    if done and pending:
        stream.write(f"{split}: resuming; {num_shards - len(pending)} of {num_shards} shards "
                     f"({done} inputs) were finished before.\n")
    elif not pending:
        stream.write(f"{split}: already prepared from these inputs; nothing to convert.\n")
    progress = ProgressLine(f"{split}", len(items), done, stream)
    tasks = ((kind, items[j], params) for i in pending for j in range(bounds[i], bounds[i + 1]))
    pool = multiprocessing.get_context("spawn").Pool(workers) if workers > 1 else None
    results = pool.imap(convert_one, tasks, chunksize=2) if pool else map(convert_one, tasks)
    current = None
    try:
        for current in pending:
            size = bounds[current + 1] - bounds[current]
            marker = _write_shard(out_dir, split, current, num_shards, digest,
                                  (next(results) for _ in range(size)),
                                  lambda n, s, d=done, k=skipped: progress.update(d + n, k + s))
            markers[current] = marker
            done += size
            skipped += len(marker["skipped"])
        progress.update(done, skipped, force=True)
        progress.close()
    except BaseException:
        progress.close()
        finished = sum(m is not None for m in markers)
        where = ("before the first shard" if current is None else
                 f"in shard {current} of {num_shards} (inputs {bounds[current]}.."
                 f"{bounds[current + 1] - 1})")
        stream.write(f"{split}: stopped {where}; {finished} finished shards are kept. Run "
                     "the same command again to resume.\n")
        raise
    finally:
        if pool:
            pool.terminate()
    return _finish(out_dir, split, kind, items, params, class_names, markers, digest)


def _state_path(out_dir: str, split: str) -> str:
    return os.path.join(out_dir, f".{split}.state.json")


def _marker_path(out_dir: str, split: str, index: int, count: int) -> str:
    return os.path.join(out_dir, f".{prepared.shard_name(split, index, count)}.done.json")


def _our_files(out_dir: str, split: str) -> list[str]:
    pattern = os.path.join(out_dir, f"{split}.array_record-*")
    return sorted(glob.glob(pattern) + glob.glob(os.path.join(out_dir, f".{split}.array_record-*")))


def _check_existing(out_dir: str, split: str, state: dict, overwrite: bool) -> None:
    info = prepared.read_info(out_dir)
    previous = cache.read_sidecar(_state_path(out_dir, split))
    existing = _our_files(out_dir, split)
    made_by_us = info is not None and split in info.get("splits", {})
    same = previous == state and (not made_by_us or
                                  info["splits"][split]["fingerprint"] == state["fingerprint"])
    if same or not (existing or made_by_us):
        return
    if not overwrite:
        what = ("was prepared from other inputs or settings" if previous or made_by_us
                else "holds shard files that this tool did not write")
        raise FileExistsError(
            f"{out_dir}: split {split!r} {what}. Nothing was changed. Pass --overwrite to "
            "replace it, or choose another --output directory.")
    for path in existing + [os.path.join(out_dir, prepared.report_name(split))]:
        if os.path.exists(path):
            os.remove(path)


def _read_marker(out_dir: str, split: str, index: int, count: int, digest: str) -> dict | None:
    marker = cache.read_sidecar(_marker_path(out_dir, split, index, count))
    shard = os.path.join(out_dir, prepared.shard_name(split, index, count))
    if marker is None or marker.get("fingerprint") != digest or not os.path.exists(shard):
        return None
    return marker if os.path.getsize(shard) == marker.get("num_bytes") else None


def _write_shard(out_dir, split, index, count, digest, results, report) -> dict:
    """Writes one shard from (ok, payload, classes) results; returns its done-marker."""
    path = os.path.join(out_dir, prepared.shard_name(split, index, count))
    marker = {"fingerprint": digest, "num_examples": 0, "labels": [], "skipped": []}

    def converted():
        for n, (ok, payload, detail) in enumerate(results, start=1):
            if ok:
                yield payload
                marker["labels"] += detail
            else:
                marker["skipped"].append({"input": payload, "reason": detail})
            report(n, len(marker["skipped"]))

    marker["num_examples"] = cache.write_records_atomically(path, converted())
    marker["num_bytes"] = os.path.getsize(path)
    cache.write_text_atomically(_marker_path(out_dir, split, index, count), json.dumps(marker))
    return marker


def _finish(out_dir, split, kind, items, params, class_names, markers, digest) -> dict:
    num_examples = sum(m["num_examples"] for m in markers)
    skipped = [s for m in markers for s in m["skipped"]]
    if not num_examples:
        raise ValueError(f"split {split!r}: all {len(items)} inputs were skipped; see "
                         f"{os.path.join(out_dir, prepared.report_name(split))}.")
    counts = [0] * len(class_names)
    for m in markers:
        for label in m["labels"]:
            counts[label] += 1
    report = {"split": split, "num_inputs": len(items), "num_converted": num_examples,
              "num_skipped": len(skipped), "skipped": skipped}
    cache.write_text_atomically(os.path.join(out_dir, prepared.report_name(split)),
                                json.dumps(report, indent=2))
    split_info = {"num_examples": num_examples, "num_skipped": len(skipped),
                  "shards": [prepared.shard_name(split, i, len(markers))
                             for i in range(len(markers))],
                  "class_counts": counts, "fingerprint": digest, "params": params}
    prepared.update_info(out_dir, split, split_info, {
        "kind": kind, "class_names": class_names, "features": inputs.FEATURES[kind]})
    return split_info
