"""Initialise a model from pretrained weights (`config.init_from`).

Reading a checkpoint (`load_flat_params(path, format)` -> {"a/b/c": np.ndarray}):
  - 'tessera': a Tessera workdir, its `checkpoints/` folder or one `checkpoints/<step>/`
    (the latest step when not given); only the params are read, as numpy, whatever the mesh
    that wrote them.
  - 'npz': a big_vision `.npz` (keys are '/'-joined param paths; a leading `params/` is
    dropped and optimizer entries `opt/...` are ignored). Read with allow_pickle=False.
  - 'scenic': a flax msgpack checkpoint file (`checkpoint_<step>`, as Scenic and
    flax.training.checkpoints write); the params are found under `params` or
    `optimizer/target`. msgpack, no pickle.
  - 'hf': a Hugging Face `transformers` directory (config.json + model.safetensors) of a
    model_type that framework.interop reads (vit; siglip and vivit with their project).
  - 'safetensors': a PyTorch state dict `.safetensors` of a timm ViT (or, with
    the SigLIP project imported, an open_clip SigLIP).
  - 'auto': a transformers directory -> hf, another directory -> tessera, `*.npz` -> npz,
    `*.safetensors` -> safetensors, any other file -> scenic.
  hf and safetensors params come renamed to ours, attention projections in 2D (split into heads
  when loaded: "reshaped"); the report says which of their keys each came from.

Mapping it into the model: an adapter (registry INIT_ADAPTERS, `config.init_from.adapter`)
is called as `adapter(source, target, **options)` with `source` the checkpoint's flat params
(after `source_prefix` selection) and `target` the model's flat {"a/b": ShapeDtypeStruct}
(after `target_prefix` selection and minus `dont_load`). It returns `(values, notes)`:
{target key: np.ndarray of the target shape} for what it fills and {target key: note} saying
how ("loaded", "resized (1, 196, 768) -> (1, 256, 768)", ...), and optionally a third
element, the set of checkpoint keys it read (default: the keys of `values`), for adapters
that rename. Target keys it does not fill
stay at their random init. An adapter raises `IncompatibleCheckpointError` (a ConfigError)
when a parameter exists on both sides but cannot be reconciled. Projects register their own
adapters (e.g. "vivit.from_vit": 2D ViT -> ViViT) and build them from `map_default` and the helpers
`resize_posemb_grid`, `inflate_kernel`, `stack_layers`.

The trainer calls `init_state_from(...)` on a fresh run (never when resuming); it logs a
report table (`format_report`) of every parameter: loaded / reshaped / resized / inflated /
init (for another library's checkpoint, with the key it came from), and the checkpoint's
unused keys.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from framework import registry
from framework.interop.mapping import reshape_heads
from framework.registry import ConfigError
from framework.trees import path_name

log = logging.getLogger(__name__)

FORMATS = ("auto", "tessera", "npz", "scenic", "hf", "safetensors")
Flat = dict[str, np.ndarray]


class IncompatibleCheckpointError(ConfigError):
    """A checkpoint parameter cannot be mapped onto the model's (shape or layout mismatch)."""


# ---------------------------------------------------------------------------------------
# Flat dicts.


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Returns {"a/b/c": leaf} for a nested dict `tree` (leaves: arrays or anything else)."""
    out = {}
    for key, value in tree.items():
        path = f"{prefix}/{key}" if prefix else str(key)
        if isinstance(value, Mapping):
            out.update(flatten(value, path))
        else:
            out[path] = value
    return out


def unflatten(flat: Mapping[str, Any]) -> dict[str, Any]:
    """Inverse of `flatten`: {"a/b": x} -> {"a": {"b": x}}."""
    tree: dict[str, Any] = {}
    for path, value in flat.items():
        node = tree
        *parents, leaf = path.split("/")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return tree


def flatten_tree(tree: Any) -> dict[str, Any]:
    """Returns {"a/b/c": leaf} for any pytree (dicts, flax FrozenDicts, dataclasses...)."""
    leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {path_name(path): leaf for path, leaf in leaves}


# ---------------------------------------------------------------------------------------
# Reading checkpoints.


def detect_format(path: str) -> str:
    """Returns 'hf', 'tessera', 'npz', 'safetensors' or 'scenic' for `path` (module
    docstring)."""
    from framework.interop import hub

    if os.path.isdir(path):
        return "hf" if hub.is_hf_dir(path) else "tessera"
    if path.endswith(".npz"):
        return "npz"
    if path.endswith(".safetensors"):
        return "safetensors"
    return "scenic"


def load_flat_params(path: str, fmt: str = "auto") -> Flat:
    """Reads the params of the checkpoint at `path` in format `fmt` (FORMATS).

    Returns {"a/b/c": np.ndarray}. Raises ConfigError naming `config.init_from.path` when
    the path does not exist or holds no checkpoint of that format.
    """
    if fmt not in FORMATS:
        raise ConfigError(f"config.init_from.format={fmt!r}: use one of {', '.join(FORMATS)}.")
    path = os.path.abspath(os.path.expanduser(str(path)))
    if not os.path.exists(path):
        raise ConfigError(f"config.init_from.path={path!r}: no such file or directory. Point it "
                          "at a Tessera workdir or checkpoint step, a big_vision .npz or a Scenic "
                          "checkpoint file.")
    fmt = detect_format(path) if fmt == "auto" else fmt
    from framework.interop import hub

    loader = {"tessera": _load_tessera, "npz": _load_npz, "scenic": _load_scenic,
              "hf": hub.load_hf, "safetensors": hub.load_state_dict}[fmt]
    try:
        flat = loader(path)
    except ConfigError:
        raise
    except Exception as e:  # noqa: BLE001 - any read failure is reported with the path.
        raise ConfigError(f"config.init_from.path={path!r}: cannot read it as a {fmt!r} "
                          f"checkpoint ({type(e).__name__}: {e}).") from e
    if not flat:
        raise ConfigError(f"config.init_from.path={path!r}: the {fmt!r} checkpoint holds no "
                          "parameters.")
    return flat


def tessera_step_dir(path: str) -> str:
    """Returns the `checkpoints/<step>` folder for a workdir, checkpoints folder or step
    folder `path` (the latest committed step when no step is named)."""
    if os.path.isdir(os.path.join(path, "state")):
        return path
    directory = path
    if os.path.isdir(os.path.join(path, "checkpoints")):
        directory = os.path.join(path, "checkpoints")
    steps = sorted(int(d) for d in os.listdir(directory)
                   if d.isdigit() and os.path.isdir(os.path.join(directory, d, "state")))
    if not steps:
        raise ConfigError(f"config.init_from.path={path!r}: no committed Tessera checkpoint "
                          "(expected WORKDIR, WORKDIR/checkpoints or WORKDIR/checkpoints/<step>).")
    return os.path.join(directory, str(steps[-1]))


def _load_tessera(path: str) -> Flat:
    """Reads the params of a Tessera checkpoint, checked against the checksums saved with
    them; raises CheckpointCorruptError naming the file (or array) and the cause."""
    import orbax.checkpoint as ocp

    from framework import checkpoint
    from framework import checkpoint_integrity as integrity

    step_dir = tessera_step_dir(path)
    _, record = integrity.read_meta(step_dir)
    state_dir = os.path.join(step_dir, "state")
    checkpoint.read_saved_shapes(state_dir)  # Names the file and the cause if unreadable.
    checkpointer = ocp.PyTreeCheckpointer()
    try:
        tree = checkpointer.metadata(state_dir).item_metadata.tree
        if "params" not in tree:
            raise ConfigError(f"config.init_from.path={path!r}: the checkpoint's state has no "
                              "params.")
        as_numpy = jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray),
                                tree["params"])
        restored = checkpointer.restore(state_dir, args=ocp.args.PyTreeRestore(
            item={"params": tree["params"]}, restore_args={"params": as_numpy},
            partial_restore=True))
    except ConfigError:
        raise
    except Exception as e:  # noqa: BLE001 - a read failure here is a damaged checkpoint.
        raise integrity.CheckpointCorruptError(
            f"checkpoint {state_dir} cannot be read ({integrity.storage_error(e)}). Use "
            "another step of that run (WORKDIR/checkpoints/<step>) or a good copy.") from e
    integrity.verify_arrays(restored["params"], record, state_dir, prefix="params/")
    return {k: np.asarray(v) for k, v in flatten_tree(restored["params"]).items()}


def _load_npz(path: str) -> Flat:
    with np.load(path, allow_pickle=False) as data:
        flat = {key: np.asarray(data[key]) for key in data.files}
    if any(k.startswith("params/") for k in flat):
        flat = {k[len("params/"):]: v for k, v in flat.items() if k.startswith("params/")}
    return {k: v for k, v in flat.items() if not k.startswith("opt/")}


def _load_scenic(path: str) -> Flat:
    from flax import serialization

    with open(path, "rb") as f:
        state = serialization.msgpack_restore(f.read())
    if not isinstance(state, Mapping):
        raise ConfigError(f"config.init_from.path={path!r}: not a flax msgpack checkpoint.")
    for keys in (("params",), ("optimizer", "target"), ("target",)):
        node = state
        for key in keys:
            node = node.get(key) if isinstance(node, Mapping) else None
        if isinstance(node, Mapping):
            if "params" in node and isinstance(node["params"], Mapping):
                node = node["params"]
            return {k: np.asarray(v) for k, v in flatten(node).items()}
    raise ConfigError(f"config.init_from.path={path!r}: no 'params' or 'optimizer/target' in "
                      f"the checkpoint (top-level keys: {', '.join(map(str, state))}).")


def save_npz(path: str, params: Any) -> None:
    """Writes a param tree as a big_vision-style `.npz` of '/'-joined keys (atomically)."""
    flat = {k: np.asarray(jax.device_get(v)) for k, v in flatten_tree(params).items()}
    tmp = f"{path}.tmp-{os.getpid()}.npz"
    np.savez(tmp, **flat)
    os.replace(tmp, path)


# ---------------------------------------------------------------------------------------
# Shape helpers for adapters.


def resize_posemb_grid(posemb: np.ndarray, new_grid: tuple[int, ...],
                       old_grid: tuple[int, ...] | None = None) -> np.ndarray:
    """Resizes learned position embeddings (1, prod(old_grid), D) to (1, prod(new_grid), D).

    Without `old_grid` the old grid is taken square (2D, h = w) or, for 1D `new_grid`, a
    line; a given `old_grid` (any rank, e.g. a video's (t, h, w)) must have new_grid's rank.
    The resize is linear on every axis (bilinear in 2D, as big_vision and Scenic do it, via
    jax.image.resize).
    """
    posemb = np.asarray(posemb)
    n, width = posemb.shape[1], posemb.shape[2]
    if old_grid is not None:
        old = tuple(int(g) for g in old_grid)
        if len(old) != len(new_grid) or int(np.prod(old)) != n:
            raise IncompatibleCheckpointError(
                f"position embedding with {n} tokens does not fit the grid {old}; cannot "
                f"resize it to {tuple(new_grid)}.")
    elif len(new_grid) == 1:
        old = (n,)
    else:
        side = int(round(np.sqrt(n)))
        if side * side != n or len(new_grid) != 2:
            raise IncompatibleCheckpointError(
                f"position embedding with {n} tokens is not a square grid; cannot resize it "
                f"to {tuple(new_grid)}.")
        old = (side, side)
    grid = posemb.reshape(old + (width,)).astype(np.float32)
    resized = jax.image.resize(grid, tuple(new_grid) + (width,), method="linear")
    return np.asarray(resized, posemb.dtype).reshape(1, -1, width)


def inflate_kernel(kernel: np.ndarray, frames: int, method: str = "central_frame") -> np.ndarray:
    """Inflates a 2D patch kernel (ph, pw, C, D) to a tubelet kernel (frames, ph, pw, C, D).

    'central_frame': the 2D kernel on the middle frame (index frames // 2), zeros elsewhere,
    so a clip of identical frames embeds exactly as the image does. 'average': the kernel
    divided by `frames` on every frame (same response to a static clip, spread over time).
    """
    kernel = np.asarray(kernel)
    if method == "central_frame":
        out = np.zeros((frames,) + kernel.shape, kernel.dtype)
        out[frames // 2] = kernel
        return out
    if method == "average":
        return np.repeat(kernel[None] / frames, frames, axis=0).astype(kernel.dtype)
    raise ConfigError(f"config.init_from.options.inflation={method!r}: use 'central_frame' "
                      "or 'average'.")


_BLOCK = re.compile(r"^(.*)/encoderblock_(\d+)/(.*)$")


def stack_layers(source: Mapping[str, np.ndarray]) -> Flat:
    """Returns `source` plus scanned-layout entries: every `X/encoderblock_{i}/Y` group is
    also offered as `X/encoderblock/Y` stacked on a leading layer axis (big_vision's scan)."""
    groups: dict[tuple[str, str], dict[int, np.ndarray]] = {}
    for key, value in source.items():
        match = _BLOCK.match(key)
        if match:
            groups.setdefault((match[1], match[3]), {})[int(match[2])] = value
    out = dict(source)
    for (head, tail), layers in groups.items():
        if sorted(layers) == list(range(len(layers))):
            out[f"{head}/encoderblock/{tail}"] = np.stack([layers[i] for i in range(len(layers))])
    return out


def unstack_layers(source: Mapping[str, np.ndarray]) -> Flat:
    """Returns `source` plus unscanned entries: `X/encoderblock/Y` (L, ...) is also offered as
    `X/encoderblock_{i}/Y` for i < L."""
    out = dict(source)
    for key, value in source.items():
        head, sep, tail = key.partition("/encoderblock/")
        if sep:
            for i in range(value.shape[0]):
                out[f"{head}/encoderblock_{i}/{tail}"] = value[i]
    return out


def is_posemb(key: str) -> bool:
    """True for learned position-embedding params (`pos_embedding`, Scenic's
    `posembed_input/pos_embedding`, `temporal_posemb`...)."""
    leaf = key.rsplit("/", 1)[-1]
    return "pos_embedding" in leaf or "posemb" in leaf


def map_default(source: Mapping[str, np.ndarray], target: Mapping[str, Any], *,
                inflation: str = "central_frame", resize_posemb: bool = True,
                posemb_grid: Mapping[str, tuple[int, ...]] | None = None,
                ) -> tuple[Flat, dict[str, str]]:
    """The "default" adapter: same name -> loaded; otherwise reconciled where meaningful.

    For each target key also in `source` (scanned and unscanned encoder layouts both match):
    equal shapes are loaded; a learned position embedding (1, N, D) of another length is
    resized on its grid (`posemb_grid[key]`, else a square grid); a 2D patch kernel
    (ph, pw, C, D) for a 3D target (T, ph, pw, C, D) is inflated by `inflation`; dtypes
    are cast; a 2D attention projection (other libraries' layout) is split into the model's
    heads. Any other shape difference raises IncompatibleCheckpointError listing them
    all (put those keys in config.init_from.dont_load to keep them at init).

    Returns (values, notes) as described in the module docstring.
    """
    offered = unstack_layers(stack_layers(source))
    values: Flat = {}
    notes: dict[str, str] = {}
    problems = []
    for key, spec in target.items():
        if key not in offered:
            continue
        value = np.asarray(offered[key])
        shape = tuple(spec.shape)
        if value.shape == shape:
            values[key], notes[key] = value, "loaded"
        elif resize_posemb and is_posemb(key) and value.ndim == 3 and len(shape) == 3 \
                and value.shape[::2] == shape[::2]:
            grid = tuple((posemb_grid or {}).get(key, ())) or _square_grid(shape[1], key)
            values[key] = resize_posemb_grid(value, grid)
            notes[key] = f"resized {value.shape} -> {shape}"
        elif value.ndim == 4 and len(shape) == 5 and value.shape == shape[1:]:
            values[key] = inflate_kernel(value, shape[0], inflation)
            notes[key] = f"inflated {value.shape} -> {shape} ({inflation})"
        elif (split := reshape_heads(key, value, shape)) is not None:
            values[key], notes[key] = split, f"reshaped {value.shape} -> {shape}"
        else:
            problems.append(f"{key}: checkpoint {value.shape}, model {shape}")
            continue
        values[key] = values[key].astype(spec.dtype)
    if problems:
        raise IncompatibleCheckpointError(
            "config.init_from: these parameters exist in the checkpoint and the model with "
            "shapes that cannot be reconciled:\n  " + "\n  ".join(problems) +
            "\nAdd them to config.init_from.dont_load (regexes) to keep them at init, or pick "
            "an adapter that maps them (config.init_from.adapter).")
    return values, notes


def _square_grid(n: int, key: str) -> tuple[int, int]:
    side = int(round(np.sqrt(n)))
    if side * side != n:
        raise IncompatibleCheckpointError(
            f"{key}: cannot infer the token grid of a position embedding with {n} tokens; "
            "pass config.init_from.options.posemb_grid.")
    return side, side


@registry.INIT_ADAPTERS.register("default")
def default_adapter(source: Mapping[str, np.ndarray], target: Mapping[str, Any],
                    **options: Any) -> tuple[Flat, dict[str, str]]:
    """Registry adapter "default": `map_default` with `options` as its keyword arguments."""
    return map_default(source, target, **options)


# ---------------------------------------------------------------------------------------
# Applying init_from to a model's params.


@dataclasses.dataclass
class LoadReport:
    """What `load_params` did. `rows`: (target key, note, source shape or None, target
    shape) for every model parameter; `unused`: checkpoint keys no parameter took."""

    rows: list[tuple[str, str, tuple | None, tuple]]
    unused: list[str]

    def count(self, prefix: str) -> int:
        """Returns how many parameters have a note starting with `prefix` ("loaded", ...)."""
        return sum(1 for _, note, _, _ in self.rows if note.startswith(prefix))


def select_prefix(flat: Mapping[str, Any], prefix: str, what: str) -> dict[str, Any]:
    """Returns the entries of `flat` under `prefix` ("a/b") with the prefix removed; all of
    `flat` when `prefix` is empty. Raises ConfigError naming `what` when none match."""
    prefix = prefix.strip("/")
    if not prefix:
        return dict(flat)
    out = {k[len(prefix) + 1:]: v for k, v in flat.items() if k.startswith(prefix + "/")}
    if not out:
        tops = sorted({k.split("/", 1)[0] for k in flat})
        raise ConfigError(f"{what}={prefix!r}: nothing is under it; top-level names are "
                          f"{', '.join(tops)}.")
    return out


def load_params(params: Any, init_from: Mapping[str, Any],
                source: Flat | None = None) -> tuple[Any, LoadReport]:
    """Fills `params` (the model's param tree, arrays or ShapeDtypeStructs) from the
    checkpoint that `init_from` (config.init_from) names.

    Returns (new param tree with numpy leaves where loaded and the original leaves elsewhere,
    LoadReport). `source` skips reading the checkpoint (already loaded flat params). Raises
    ConfigError for a missing or unreadable checkpoint, an unknown adapter, shapes that
    cannot be reconciled, or a checkpoint of which nothing matches the model.
    """
    init_from = init_from.to_dict() if hasattr(init_from, "to_dict") else dict(init_from)
    if source is None:
        source = load_flat_params(init_from["path"], init_from.get("format", "auto"))
    # A checkpoint of another library (framework.interop) says where each param came from.
    origins, foreign = getattr(source, "notes", {}), list(getattr(source, "unknown", ()))
    source = select_prefix(source, init_from.get("source_prefix", ""),
                           "config.init_from.source_prefix")
    flat_target = flatten_tree(params)
    target_prefix = str(init_from.get("target_prefix", "")).strip("/")
    target = select_prefix(flat_target, target_prefix, "config.init_from.target_prefix")
    skip = [_regex(p) for p in tuple(init_from.get("dont_load", ()) or ())]
    kept = {k: v for k, v in target.items() if not any(p.search(k) for p in skip)}
    adapter = registry.INIT_ADAPTERS.get(init_from.get("adapter") or "default",
                                         "config.init_from.adapter")
    options = dict(init_from.get("options") or {})
    registry.check_kwargs(adapter, options, "config.init_from.options",
                          f"adapter {init_from.get('adapter') or 'default'!r}")
    result = adapter(source, kept, **options)
    values, notes = result[0], result[1]
    # An adapter that renames (e.g. "Transformer/..." -> "SpatialTransformer/...") returns the
    # checkpoint keys it read as a third element, so the report does not call them unused.
    read = set(result[2]) if len(result) > 2 else set(values)
    extra = sorted(set(values) - set(kept))
    if extra:
        raise ConfigError(f"config.init_from.adapter returned keys the model does not have "
                          f"(or that dont_load excludes): {', '.join(extra[:5])}.")
    if not values:
        raise ConfigError(
            "config.init_from: no parameter of the checkpoint matches the model. Checkpoint "
            f"keys look like {', '.join(sorted(source)[:3])}; model keys like "
            f"{', '.join(sorted(kept)[:3])}. Set config.init_from.source_prefix / "
            "target_prefix or an adapter.")
    rows = []
    for key, spec in target.items():
        if any(p.search(key) for p in skip):
            note = "init (dont_load)"
        else:
            note = notes.get(key, "loaded" if key in values else "init (not in checkpoint)")
            origin = origins.get(_prefixed(init_from.get("source_prefix", ""), key))
            note = f"{note} <- {origin}" if origin and key in values else note
        shape = tuple(values[key].shape) if key in values else None
        rows.append((key, note, shape, tuple(spec.shape)))
    prefix = target_prefix + "/" if target_prefix else ""
    used = {prefix + k: v for k, v in values.items()}
    leaves, treedef = jax.tree_util.tree_flatten_with_path(params)
    new_leaves = [used.get(path_name(path), leaf) for path, leaf in leaves]
    unused = sorted(k for k in source if k not in read and not _scan_alias(k, read)) + foreign
    return jax.tree_util.tree_unflatten(treedef, new_leaves), LoadReport(rows, unused)


def _prefixed(prefix: str, key: str) -> str:
    prefix = prefix.strip("/")
    return f"{prefix}/{key}" if prefix else key


def _scan_alias(key: str, consumed: set[str]) -> bool:
    match = _BLOCK.match(key)
    return bool(match) and f"{match[1]}/encoderblock/{match[3]}" in consumed


def _regex(pattern: str) -> re.Pattern:
    try:
        return re.compile(pattern)
    except re.error as e:
        raise ConfigError(f"config.init_from.dont_load: bad regex {pattern!r} ({e}).") from None


def format_report(report: LoadReport, max_unused: int = 20) -> str:
    """Returns the report as a text table: key, what happened, shapes; then unused keys."""
    width = max((len(k) for k, *_ in report.rows), default=10)
    lines = [f"{'parameter':<{width}}  {'status':<40}  shape"]
    for key, note, _, shape in report.rows:
        lines.append(f"{key:<{width}}  {note:<40}  {shape}")
    summary = ", ".join(f"{report.count(p)} {p}" for p in ("loaded", "reshaped", "resized",
                                                             "inflated", "init")
                        if p != "reshaped" or report.count(p))  # Only other libraries' layouts.
    lines.append(f"-- {summary}; {len(report.unused)} checkpoint entries unused")
    for key in report.unused[:max_unused]:
        lines.append(f"   unused: {key}")
    if len(report.unused) > max_unused:
        lines.append(f"   ... and {len(report.unused) - max_unused} more")
    return "\n".join(lines)


def check_init_from(init_from: Mapping[str, Any]) -> None:
    """Checks `config.init_from` without reading the weights: the path exists, the format and
    adapter are known and the options fit the adapter. Raises ConfigError naming the key."""
    init_from = init_from.to_dict() if hasattr(init_from, "to_dict") else dict(init_from)
    path = os.path.abspath(os.path.expanduser(str(init_from["path"])))
    if not os.path.exists(path):
        raise ConfigError(f"config.init_from.path={path!r}: no such file or directory. Point it "
                          "at a Tessera workdir or checkpoint step, a big_vision .npz or a Scenic "
                          "checkpoint file.")
    if init_from.get("format", "auto") not in FORMATS:
        raise ConfigError(f"config.init_from.format={init_from['format']!r}: use one of "
                          f"{', '.join(FORMATS)}.")
    name = init_from.get("adapter") or "default"
    adapter = registry.INIT_ADAPTERS.get(name, "config.init_from.adapter")
    registry.check_kwargs(adapter, dict(init_from.get("options") or {}),
                          "config.init_from.options", f"adapter {name!r}")


def init_state_from(state: Any, shardings: Any, init_from: Mapping[str, Any],
                    init_opt_state: Callable[[Any], Any],
                    loaded: tuple[Any, LoadReport] | None = None) -> Any:
    """Returns the fresh TrainState `state` with params loaded per `init_from`.

    The loaded params are placed in `shardings.params`, and the optimizer state is
    re-created from them with `init_opt_state(params)` (jitted into `shardings.opt_state`).
    `loaded`: what load_params already returned for this `init_from` on params of the same
    shapes (abstract ones will do), so the checkpoint is not read twice. Logs the load report
    on process 0.
    """
    params, report = loaded if loaded is not None else load_params(state.params, init_from)
    if jax.process_index() == 0:
        log.info("init_from %s:\n%s", init_from["path"], format_report(report))
    # Params the checkpoint did not give keep the fresh state's values.
    params = jax.tree.map(
        lambda x, ref, s: jax.device_put(np.asarray(x, ref.dtype), s)
        if isinstance(x, np.ndarray) else ref,
        params, state.params, shardings.params)
    opt_state = jax.jit(init_opt_state, out_shardings=shardings.opt_state)(params)
    ema = None
    if state.ema_params is not None:  # The EMA starts from the loaded params too.
        ema = jax.jit(lambda p: jax.tree.map(jnp.copy, p),
                      out_shardings=shardings.ema_params)(params)
    return state.replace(params=params, opt_state=opt_state, ema_params=ema)
