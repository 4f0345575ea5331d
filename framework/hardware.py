"""Peak FLOP/s of accelerators (for MFU), a measured CPU matmul peak, and device memory.

Peaks are the vendors' dense (no sparsity) numbers per chip / per GPU, for the dtype a
training step mostly multiplies in: bfloat16 on TPUs and GPUs. On CPU there is no datasheet
number that XLA can reach, so the peak is measured: the best FLOP/s of a large jitted matmul.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp

from framework.process_memory import process_peak_rss_bytes

# device_kind substring (lower case) -> dense bf16 peak FLOP/s of one device, as JAX counts
# devices (one TPU chip with megacore = one device; one GPU = one device). Order matters:
# the first matching substring wins, so more specific names come first.
PEAK_FLOPS: tuple[tuple[str, float], ...] = (
    ("tpu v5 lite", 197e12),  # TPU v5e
    ("tpu v5e", 197e12),
    ("tpu v5p", 459e12),
    ("tpu v5", 459e12),  # TPU v5p reports "TPU v5"
    ("tpu v4", 275e12),
    ("tpu v6 lite", 918e12),  # Trillium (v6e)
    ("h200", 989e12),  # SXM, dense bf16
    ("h100", 989e12),  # SXM, dense bf16 (PCIe parts: 756e12)
    ("a100", 312e12),
)


def known_peak_flops(device_kind: str) -> float | None:
    """Returns the dense bf16 peak FLOP/s of one device of `device_kind` (JAX's
    `device.device_kind`, e.g. "TPU v4", "NVIDIA H100 80GB HBM3"), or None if not in the
    table."""
    kind = device_kind.lower()
    for name, peak in PEAK_FLOPS:
        if name in kind:
            return peak
    return None


def measure_matmul_peak(size: int = 2048, repeats: int = 10, dtype: str = "float32",
                        device: jax.Device | None = None) -> float:
    """Returns the best FLOP/s of a jitted (size, size) @ (size, size) matmul on `device`.

    Counts 2 * size**3 FLOPs per matmul (a multiply-add = 2, as XLA's cost analysis does) and
    keeps the fastest of `repeats` timed runs after one warm-up, so it estimates what the
    machine can reach, not its average under load.
    """
    device = device or jax.devices()[0]
    key_a, key_b = jax.random.split(jax.random.key(0))
    a = jax.device_put(jax.random.normal(key_a, (size, size), dtype), device)
    b = jax.device_put(jax.random.normal(key_b, (size, size), dtype), device)
    matmul = jax.jit(jnp.matmul)
    matmul(a, b).block_until_ready()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        matmul(a, b).block_until_ready()
        best = min(best, time.perf_counter() - start)
    return 2.0 * size**3 / best


def peak_flops(device: jax.Device | None = None) -> tuple[float, str]:
    """Returns (peak FLOP/s of one `device`, where the number comes from).

    The source is "table" for a known accelerator, "measured float32 matmul" on CPU, and
    raises ValueError for an accelerator missing from PEAK_FLOPS (add it there).
    """
    device = device or jax.devices()[0]
    peak = known_peak_flops(device.device_kind)
    if peak is not None:
        return peak, "table (dense bf16)"
    if device.platform == "cpu":
        return measure_matmul_peak(device=device), "measured float32 matmul"
    raise ValueError(f"No peak FLOP/s known for device kind {device.device_kind!r}; add it to "
                     "framework.hardware.PEAK_FLOPS.")


def describe(device: jax.Device | None = None) -> str:
    """Returns a short description of the machine, e.g. "cpu x1 (2 cores)" or
    "NVIDIA H100 80GB HBM3 x8"."""
    import os

    device = device or jax.devices()[0]
    count = len(jax.devices())
    if device.platform == "cpu":
        return f"cpu x{count} ({os.cpu_count()} cores)"
    return f"{device.device_kind} x{count}"


def peak_memory_bytes(device: jax.Device | None = None) -> tuple[int | None, str]:
    """Returns (peak memory in bytes, where the number comes from).

    On accelerators: the device allocator's `peak_bytes_in_use`. On CPU (no allocator
    statistics): the process's peak resident set size, which bounds the step's memory from
    above (it includes the Python process and the input pipeline).
    """
    device = device or jax.devices()[0]
    stats = device.memory_stats() if hasattr(device, "memory_stats") else None
    if stats and "peak_bytes_in_use" in stats:
        return int(stats["peak_bytes_in_use"]), "device allocator peak"
    return process_peak_rss_bytes(), "process peak RSS"
