"""The kernels of a ViT-B / ViViT-B train step, XLA (as JAX compiles them) beside PyTorch.

    python -m benchmarks.kernels_vs_torch [--repeats 5] [--out benchmarks/kernels-cpu.md]

Needs the `compare` extra (torch next to JAX). Times, on the same machine and inputs, the
matmuls of a ViT-B/16 layer at batch 8 (1576 tokens), a chain of them with its backward
pass, and the attention core at ViT-B's 197 and ViViT-B model 1's 3137 tokens, each the
median of `--repeats` runs after a warm-up: first every JAX case, then every PyTorch case,
so that neither runtime's threads compete with the other's. It shows which part of the
train-step gap to PyTorch is in XLA's kernels (`benchmarks/README.md`).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np

TOKENS, WIDTH, MLP, HEADS, HEAD_DIM = 8 * 197, 768, 3072, 12, 64


def median_ms(fn, repeats: int) -> float:
    """Runs fn() once to warm up, then `repeats` times; returns the median in ms."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def arrays(*shapes):
    """Standard-normal float32 numpy arrays of the given shapes (seeded)."""
    rng = np.random.default_rng(0)
    return [rng.standard_normal(s, dtype=np.float32) * 0.05 for s in shapes]


def chain(x, *ws):
    """x + x.W1.W2 for each pair of `ws` in turn (JAX or torch arrays alike)."""
    for i in range(0, len(ws), 2):
        x = x + (x @ ws[i]) @ ws[i + 1]
    return x


def jax_cases(repeats: int) -> dict[str, float]:
    """Returns {case: ms} for the JAX side."""
    import jax
    import jax.numpy as jnp

    from framework.layers.blockwise_attention import blockwise_dot_product_attention

    def timed(fn, *args):
        compiled = jax.jit(fn).lower(*args).compile()
        return median_ms(lambda: jax.block_until_ready(compiled(*args)), repeats)

    def grad_of(fn, argnums):
        return jax.grad(lambda *a: jnp.sum(fn(*a) ** 2), argnums=argnums)

    x, w1, h, w2 = map(jnp.asarray, arrays((TOKENS, WIDTH), (WIDTH, MLP), (TOKENS, MLP),
                                           (MLP, WIDTH)))
    out = {
        "matmul (1576, 768) x (768, 3072)": timed(jnp.matmul, x, w1),
        "matmul (1576, 3072) x (3072, 768)": timed(jnp.matmul, h, w2),
        "weight gradient (1576, 768)^T x (1576, 3072)": timed(lambda a, b: a.T @ b, x, h),
    }
    chain_w = [jnp.asarray(a) for a in arrays(*[(WIDTH, MLP), (MLP, WIDTH)] * 4)]

    out["4 x (x + x.W1.W2), forward + backward"] = timed(
        grad_of(chain, tuple(range(9))), x, *chain_w)
    for name, shape in (("197 tokens, batch 8", (8, 197, HEADS, HEAD_DIM)),
                        ("3137 tokens, batch 1", (1, 3137, HEADS, HEAD_DIM))):
        q, k, v = map(jnp.asarray, arrays(shape, shape, shape))
        for impl, fn in (("XLA dense", jax.nn.dot_product_attention),
                         ("blockwise (ours)", blockwise_dot_product_attention)):
            out[f"attention core {name}, {impl}, forward"] = timed(fn, q, k, v)
            out[f"attention core {name}, {impl}, forward + backward"] = timed(
                grad_of(fn, (0, 1, 2)), q, k, v)
    return out


def torch_cases(repeats: int) -> dict[str, float]:
    """Returns {case: ms} for the PyTorch side (same cases, SDPA as the attention core)."""
    import torch

    def grad_run(fn, *args):
        def run():
            for a in args:
                a.grad = None
            (fn(*args) ** 2).sum().backward()
        return run

    x, w1, h, w2 = map(torch.from_numpy, arrays((TOKENS, WIDTH), (WIDTH, MLP), (TOKENS, MLP),
                                                (MLP, WIDTH)))
    with torch.no_grad():
        out = {
            "matmul (1576, 768) x (768, 3072)": median_ms(lambda: x @ w1, repeats),
            "matmul (1576, 3072) x (3072, 768)": median_ms(lambda: h @ w2, repeats),
            "weight gradient (1576, 768)^T x (1576, 3072)": median_ms(lambda: x.T @ h, repeats),
        }
    chain_w = [torch.from_numpy(a).requires_grad_()
               for a in arrays(*[(WIDTH, MLP), (MLP, WIDTH)] * 4)]
    xg = x.clone().requires_grad_()

    out["4 x (x + x.W1.W2), forward + backward"] = median_ms(grad_run(chain, xg, *chain_w),
                                                             repeats)
    sdpa = torch.nn.functional.scaled_dot_product_attention
    for name, shape in (("197 tokens, batch 8", (8, 197, HEADS, HEAD_DIM)),
                        ("3137 tokens, batch 1", (1, 3137, HEADS, HEAD_DIM))):
        # (B, L, H, Dh) -> SDPA's (B, H, L, Dh).
        q, k, v = (torch.from_numpy(a).transpose(1, 2).contiguous().requires_grad_()
                   for a in arrays(shape, shape, shape))
        with torch.no_grad():
            out[f"attention core {name}, PyTorch SDPA, forward"] = median_ms(
                lambda q=q, k=k, v=v: sdpa(q, k, v), repeats)
        out[f"attention core {name}, PyTorch SDPA, forward + backward"] = median_ms(
            grad_run(sdpa, q, k, v), repeats)
    return out


def main() -> int:
    """Runs both sides and writes the Markdown table; returns the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default=os.path.join("benchmarks", "kernels-cpu.md"))
    args = parser.parse_args()
    try:
        import torch
    except ImportError:
        print("Error: torch is not importable; install the compare extra: "
              "pip install -e '.[compare]'.", file=sys.stderr)
        return 2
    torch.set_num_threads(os.cpu_count() or 1)
    ours = jax_cases(args.repeats)
    peer = torch_cases(args.repeats)
    lines = ["| case | JAX / XLA ms | PyTorch ms | XLA vs PyTorch (speed) |",
             "|---|---:|---:|---:|"]
    for case, ms in ours.items():
        key = case.replace("XLA dense", "PyTorch SDPA").replace("blockwise (ours)",
                                                                  "PyTorch SDPA")
        theirs = peer.get(key)
        ratio = f"{theirs / ms:.2f}x" if theirs else ""
        lines.append(f"| {case} | {ms:.1f} | {theirs:.1f} | {ratio} |" if theirs else
                     f"| {case} | {ms:.1f} | | |")
    load = os.getloadavg()[0]
    table = "\n".join(lines)
    with open(args.out, "w") as f:
        f.write(f"Written by `python -m benchmarks.kernels_vs_torch --repeats {args.repeats}` "
                f"({os.cpu_count()} CPU cores, load average {load:.1f} at the end).\n\n"
                f"{table}\n")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
