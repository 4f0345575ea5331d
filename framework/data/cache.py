"""Generate-once caching of a dataset split as an ArrayRecord file plus a JSON sidecar.

Layout: `<root>/<name>/<version>-<params hash>/<split>.array_record` and `<split>.json`.
The sidecar is written last and names the parameters, the record count and the file size;
a split is reused only when its sidecar matches. Files are written under temporary names and
moved into place with os.replace, under a per-split file lock, so concurrent processes on
one machine neither see half-written files nor generate the same split twice.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import uuid
from collections.abc import Callable, Iterable

from array_record.python.array_record_module import ArrayRecordWriter

try:
    import fcntl
except ImportError:  # Not POSIX: rely on the atomic os.replace alone.
    fcntl = None


def params_fingerprint(version: str, params: dict) -> str:
    """Returns "<version>-<10 hex digits>" identifying `params` (JSON-serializable)."""
    text = json.dumps(params, sort_keys=True, separators=(",", ":"))
    return f"{version}-{hashlib.sha1(text.encode()).hexdigest()[:10]}"


def split_paths(root: str, name: str, fingerprint: str, split: str) -> tuple[str, str]:
    """Returns (records path, sidecar path) of `split` of dataset `name`."""
    directory = os.path.join(root, name, fingerprint)
    return (os.path.join(directory, f"{split}.array_record"),
            os.path.join(directory, f"{split}.json"))


def read_sidecar(sidecar_path: str) -> dict | None:
    """Returns the parsed sidecar, or None when it is missing or unreadable."""
    try:
        with open(sidecar_path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def ensure_split(
    root: str,
    name: str,
    version: str,
    params: dict,
    split: str,
    generate: Callable[[], tuple[Iterable[bytes], dict]],
) -> tuple[str, dict]:
    """Returns (records path, sidecar dict) of a cached split, generating it if needed.

    `params` (JSON-serializable) fully determine the data; `generate()` returns (the records
    as bytes, extra sidecar fields such as class names and feature shapes). The sidecar also
    holds name, split, version, params, num_examples and num_bytes.
    """
    params = json.loads(json.dumps(params, sort_keys=True))
    fingerprint = params_fingerprint(version, params)
    records_path, sidecar_path = split_paths(root, name, fingerprint, split)
    sidecar = _valid_sidecar(records_path, sidecar_path, version, params)
    if sidecar is not None:
        return records_path, sidecar
    os.makedirs(os.path.dirname(records_path), exist_ok=True)
    with file_lock(os.path.join(os.path.dirname(records_path), f".{split}.lock")):
        sidecar = _valid_sidecar(records_path, sidecar_path, version, params)
        if sidecar is not None:  # Another process generated it while we waited.
            return records_path, sidecar
        records, extra = generate()
        num_examples = write_records_atomically(records_path, records)
        sidecar = dict(extra, name=name, split=split, version=version, params=params,
                       fingerprint=fingerprint, num_examples=num_examples,
                       num_bytes=os.path.getsize(records_path))
        write_text_atomically(sidecar_path, json.dumps(sidecar, indent=2, sort_keys=True))
    return records_path, sidecar


def _valid_sidecar(records_path: str, sidecar_path: str, version: str,
                   params: dict) -> dict | None:
    sidecar = read_sidecar(sidecar_path)
    if sidecar is None or sidecar.get("version") != version or sidecar.get("params") != params:
        return None
    try:
        if os.path.getsize(records_path) != sidecar.get("num_bytes"):
            return None
    except OSError:
        return None
    return sidecar


def temp_name(path: str) -> str:
    """Returns a unique temporary file name next to `path` (for an atomic os.replace)."""
    return f"{path}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def write_records_atomically(path: str, records: Iterable[bytes]) -> int:
    """Writes `records` to the ArrayRecord file `path` through a temporary file and
    os.replace (nothing is left at `path` if it fails); returns how many were written."""
    tmp = temp_name(path)
    count = 0
    try:
        writer = ArrayRecordWriter(tmp, "group_size:1")
        try:
            for record in records:
                writer.write(record)
                count += 1
        finally:
            writer.close()
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return count


def write_text_atomically(path: str, text: str) -> None:
    """Writes `text` to `path` through a temporary file and os.replace."""
    tmp = temp_name(path)
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


@contextlib.contextmanager
def file_lock(path: str):
    """Context manager holding an exclusive lock on the file `path` (created if needed)."""
    if fcntl is None:
        yield
        return
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
