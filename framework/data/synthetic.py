"""Built-in synthetic datasets, generated with numpy on first use and cached as ArrayRecord.

`synthetic_shapes`: 32x32 images of one filled shape (circle, square, triangle, cross) in one
of three colours (red, green, blue) on a noisy grey background; label = shape x colour
(12 classes, names in `info['class_names']`, e.g. "red circle"). Size and position vary.
Defaults: 10000 train / 1000 eval examples (about 1.5 s to generate, 33 MB).

`synthetic_motion`: 8-frame 32x32 videos of one shape (random shape and colour: nuisance)
moving in a straight line on a torus (it wraps at the borders); label = direction of motion
(4 or 8 directions, or 2). Because positions wrap and the start is uniform, every single
frame has the same distribution for every class: only motion tells the class.
Defaults: 4 directions, 3000 train / 600 eval videos (about 3-4 s to generate, 88 MB).

Both have splits "train" and "eval" ("test" and "validation" are aliases of "eval"); each
split has its own fixed generator seed, labels are balanced (counts differ by at most one).
Files: `<data_dir>/<name>/<version>-<params hash>/<split>.array_record` + `<split>.json`.
"""

from __future__ import annotations

import math

import grain
import numpy as np

from framework import registry
from framework.data import cache, records
from framework.data.spec import DatasetSpec, resolve_data_dir

SHAPES = ("circle", "square", "triangle", "cross")
COLOURS = {"red": (220, 45, 45), "green": (40, 190, 60), "blue": (55, 85, 235)}
DIRECTIONS = ("right", "up-right", "up", "up-left", "left", "down-left", "down", "down-right")
SPLIT_ALIASES = {"train": "train", "eval": "eval", "test": "eval", "validation": "eval"}
_SPLIT_SEEDS = {"train": 0, "eval": 1}
_CHUNK = 512  # Examples rendered per vectorized step.
# Part of the cache path: bump it whenever a change to this file changes the generated data.
SHAPES_VERSION = "v2"
MOTION_VERSION = "v2"


def canonical_split(name: str, split: str) -> str:
    """Returns "train" or "eval" for `split` (or an alias); raises ValueError otherwise."""
    if split not in SPLIT_ALIASES:
        raise ValueError(f"{name}: unknown split {split!r}. Known splits: train, eval "
                         "(test and validation are aliases of eval).")
    return SPLIT_ALIASES[split]


def shape_masks(kind: np.ndarray, dy: np.ndarray, dx: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Returns bool masks of filled shapes.

    `kind` int (N,) indexes SHAPES; `dy`, `dx` float (N, ..., H, W): offsets of each pixel
    centre from the shape centre; `r` float (N,): the shape's radius in pixels. The output
    has the shape of `dy`.
    """
    masks = np.empty(dy.shape, bool)
    extra = (1,) * (dy.ndim - 1)
    for k in range(len(SHAPES)):
        idx = np.flatnonzero(kind == k)
        if idx.size:
            masks[idx] = _shape_mask(k, dy[idx], dx[idx], r[idx].reshape((-1,) + extra))
    return masks


def _shape_mask(kind: int, dy: np.ndarray, dx: np.ndarray, r: np.ndarray) -> np.ndarray:
    ady, adx = np.abs(dy), np.abs(dx)
    if SHAPES[kind] == "circle":
        return dy * dy + dx * dx <= r * r
    if SHAPES[kind] == "square":
        return np.maximum(ady, adx) <= 0.8 * r
    if SHAPES[kind] == "triangle":
        return (dy >= -r) & (dy <= 0.75 * r) & (adx <= (dy + r) / 1.75)
    return ((adx <= 0.35 * r) & (ady <= r)) | ((ady <= 0.35 * r) & (adx <= r))


def _balanced_labels(rng: np.random.Generator, n: int, num_classes: int) -> np.ndarray:
    return rng.permutation(np.arange(n) % num_classes).astype(np.int32)


def _backgrounds(rng: np.random.Generator, n: int) -> np.ndarray:
    """Returns float (n, 3): a grey level per example with a slight tint."""
    grey = rng.uniform(70, 150, size=(n, 1))
    return grey + rng.uniform(-12, 12, size=(n, 3))


def _colours(rng: np.random.Generator, index: np.ndarray) -> np.ndarray:
    """Returns float (n, 3): the palette colours `index` with +-25 jitter per channel."""
    palette = np.array(list(COLOURS.values()), np.float64)
    return palette[index] + rng.uniform(-25, 25, size=(len(index), 3))


def _paint(rng: np.random.Generator, mask: np.ndarray, fg: np.ndarray, bg: np.ndarray,
           noise: float) -> np.ndarray:
    """Returns uint8 pixels: `fg` where `mask` else `bg`, plus Gaussian noise (std noise*255).

    `mask` bool (..., 1); `fg`, `bg` float (..., 3) broadcastable against it.
    """
    pixels = np.where(mask, fg.astype(np.float32), bg.astype(np.float32))
    pixels += rng.standard_normal(size=pixels.shape, dtype=np.float32) * np.float32(noise * 255)
    np.clip(pixels, 0, 255, out=pixels)
    pixels += np.float32(0.5)
    return pixels.astype(np.uint8)


def generate_shapes(split: str, num_examples: int, image_size: int,
                    noise: float) -> tuple[np.ndarray, np.ndarray]:
    """Returns (images uint8 (N, S, S, 3), labels int32 (N,)) of synthetic_shapes.

    Deterministic in its arguments; label = shape_index * len(COLOURS) + colour_index.
    """
    rng = np.random.default_rng([12345, _SPLIT_SEEDS[split]])
    num_colours = len(COLOURS)
    labels = _balanced_labels(rng, num_examples, len(SHAPES) * num_colours)
    images = np.empty((num_examples, image_size, image_size, 3), np.uint8)
    grid = np.arange(image_size) + 0.5
    for start in range(0, num_examples, _CHUNK):
        lab = labels[start:start + _CHUNK]
        n = len(lab)
        r = rng.uniform(0.25, 0.4, size=n) * image_size
        cy = rng.uniform(r, image_size - r)
        cx = rng.uniform(r, image_size - r)
        dy = grid[None, :, None] - cy[:, None, None] + np.zeros((1, 1, image_size))
        dx = grid[None, None, :] - cx[:, None, None] + np.zeros((1, image_size, 1))
        mask = shape_masks(lab // num_colours, dy, dx, r)[..., None]
        fg = _colours(rng, lab % num_colours)[:, None, None, :]
        bg = _backgrounds(rng, n)[:, None, None, :]
        images[start:start + n] = _paint(rng, mask, fg, bg, noise)
    return images, labels


def direction_names(num_directions: int) -> list[str]:
    """Returns the class names of synthetic_motion for 2, 4 or 8 directions, label order."""
    return list(DIRECTIONS[::8 // num_directions])


def generate_motion(split: str, num_examples: int, num_frames: int, image_size: int,
                    num_directions: int, noise: float) -> tuple[np.ndarray, np.ndarray]:
    """Returns (videos uint8 (N, T, S, S, 3), labels int32 (N,)) of synthetic_motion.

    Label k moves at angle 2*pi*k/num_directions (0 = right, counter-clockwise, y up) at
    1.5-2.5 pixels per frame; positions wrap around the borders.
    """
    rng = np.random.default_rng([54321, _SPLIT_SEEDS[split]])
    labels = _balanced_labels(rng, num_examples, num_directions)
    videos = np.empty((num_examples, num_frames, image_size, image_size, 3), np.uint8)
    grid = np.arange(image_size) + 0.5
    t = np.arange(num_frames)[None, :]
    half = image_size / 2
    for start in range(0, num_examples, _CHUNK):
        lab = labels[start:start + _CHUNK]
        n = len(lab)
        kind = rng.integers(0, len(SHAPES), size=n)
        r = rng.uniform(0.15, 0.25, size=n) * image_size
        speed = rng.uniform(1.5, 2.5, size=n)
        angle = 2 * math.pi * lab / num_directions
        y0, x0 = rng.uniform(0, image_size, size=(2, n))
        cy = y0[:, None] - (speed * np.sin(angle))[:, None] * t  # (n, T); y grows downwards.
        cx = x0[:, None] + (speed * np.cos(angle))[:, None] * t
        dy = (grid[None, None, :, None] - cy[..., None, None] + half) % image_size - half
        dx = (grid[None, None, None, :] - cx[..., None, None] + half) % image_size - half
        dy, dx = (np.ascontiguousarray(a, np.float32) for a in np.broadcast_arrays(dy, dx))
        mask = shape_masks(kind, dy, dx, r)[..., None]
        fg = _colours(rng, rng.integers(0, len(COLOURS), size=n))[:, None, None, None, :]
        bg = _backgrounds(rng, n)[:, None, None, None, :]
        videos[start:start + n] = _paint(rng, mask, fg, bg, noise)
    return videos, labels


def _encode_all(key: str, pixels: np.ndarray, labels: np.ndarray):
    for x, y in zip(pixels, labels):
        yield records.encode_example({key: x, "label": np.asarray(y, np.int32)})


def _spec(name: str, split: str, path: str, sidecar: dict, pixel_key: str) -> DatasetSpec:
    info = {k: sidecar[k] for k in ("class_names", "features", "fingerprint", "params",
                                     "class_counts")}
    info["path"] = path
    return DatasetSpec(
        name=name, split=split, source=grain.sources.ArrayRecordDataSource(path),
        decode=records.PixelDecoder(pixel_key), num_examples=sidecar["num_examples"],
        num_classes=len(sidecar["class_names"]), info=info)


def _features(pixel_key: str, shape: tuple[int, ...]) -> dict:
    return {pixel_key: {"shape": list(shape), "dtype": "float32"},
            "label": {"shape": [], "dtype": "int32"}}


@registry.DATASETS.register("synthetic_shapes")
def synthetic_shapes(split: str, data_dir: str | None, image_size: int = 32,
                     num_train: int = 10000, num_eval: int = 1000,
                     noise: float = 0.08) -> DatasetSpec:
    """Returns the DatasetSpec of synthetic_shapes' `split`, generating it on first use.

    Examples: {'image': float32 (image_size, image_size, 3) in [-1, 1], 'label': int32 ()},
    12 classes "<colour> <shape>" (label = shape_index * 3 + colour_index). `noise` is the
    std of the per-pixel Gaussian noise as a fraction of the 0..255 range.
    """
    name = "synthetic_shapes"
    split = canonical_split(name, split)
    _check_positive(name, image_size=image_size, num_train=num_train, num_eval=num_eval)
    params = dict(image_size=int(image_size), num_train=int(num_train),
                  num_eval=int(num_eval), noise=float(noise))
    count = params["num_train"] if split == "train" else params["num_eval"]
    class_names = [f"{c} {s}" for s in SHAPES for c in COLOURS]

    def generate():
        images, labels = generate_shapes(split, count, params["image_size"], params["noise"])
        extra = dict(class_names=class_names, features=_features("image", images.shape[1:]),
                     class_counts=np.bincount(labels, minlength=len(class_names)).tolist())
        return _encode_all("image", images, labels), extra

    path, sidecar = cache.ensure_split(resolve_data_dir(data_dir), name, SHAPES_VERSION,
                                       params, split, generate)
    return _spec(name, split, path, sidecar, "image")


@registry.DATASETS.register("synthetic_motion")
def synthetic_motion(split: str, data_dir: str | None, num_frames: int = 8,
                     image_size: int = 32, num_directions: int = 4, num_train: int = 3000,
                     num_eval: int = 600, noise: float = 0.08) -> DatasetSpec:
    """Returns the DatasetSpec of synthetic_motion's `split`, generating it on first use.

    Examples: {'video': float32 (num_frames, image_size, image_size, 3) in [-1, 1],
    'label': int32 ()}; `num_directions` (2, 4 or 8) classes named by direction
    ("right", "up", ...).
    """
    name = "synthetic_motion"
    split = canonical_split(name, split)
    _check_positive(name, num_frames=num_frames, image_size=image_size, num_train=num_train,
                    num_eval=num_eval)
    if num_directions not in (2, 4, 8):
        raise ValueError(f"{name}: num_directions={num_directions!r}; must be 2, 4 or 8.")
    params = dict(num_frames=int(num_frames), image_size=int(image_size),
                  num_directions=int(num_directions), num_train=int(num_train),
                  num_eval=int(num_eval), noise=float(noise))
    count = params["num_train"] if split == "train" else params["num_eval"]
    class_names = direction_names(num_directions)

    def generate():
        videos, labels = generate_motion(split, count, params["num_frames"],
                                         params["image_size"], num_directions, params["noise"])
        extra = dict(class_names=class_names, features=_features("video", videos.shape[1:]),
                     class_counts=np.bincount(labels, minlength=len(class_names)).tolist())
        return _encode_all("video", videos, labels), extra

    path, sidecar = cache.ensure_split(resolve_data_dir(data_dir), name, MOTION_VERSION,
                                       params, split, generate)
    return _spec(name, split, path, sidecar, "video")


def _check_positive(name: str, **values: int) -> None:
    for key, value in values.items():
        if not isinstance(value, int | np.integer) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name}: {key}={value!r} must be a positive int.")
