"""`.safetensors` files as numpy dicts (the `safetensors` package's numpy API; no torch)."""

from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np

from framework.registry import ConfigError


def read_safetensors(path: str) -> dict[str, np.ndarray]:
    """Returns {tensor name: np.ndarray} of the `.safetensors` file at `path`.

    Raises ConfigError naming the path when it cannot be read (not a safetensors file, or a
    dtype numpy cannot hold such as bfloat16 written by torch).
    """
    from safetensors.numpy import load_file

    try:
        return {k: np.asarray(v) for k, v in load_file(path).items()}
    except Exception as e:  # noqa: BLE001 - any read failure is reported with the path.
        raise ConfigError(f"{path}: cannot read it as a .safetensors file ({type(e).__name__}: "
                          f"{e}).") from e


def write_safetensors(path: str, tensors: Mapping[str, np.ndarray]) -> None:
    """Writes `tensors` {name: array} to `path` as a PyTorch-flavoured `.safetensors` file
    (metadata format "pt", contiguous float32 / int arrays), atomically."""
    from safetensors.numpy import save_file

    arrays = {k: np.ascontiguousarray(v) for k, v in tensors.items()}
    tmp = f"{path}.tmp-{os.getpid()}"
    save_file(arrays, tmp, metadata={"format": "pt"})
    os.replace(tmp, path)
