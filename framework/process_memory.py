"""A process's own host memory, without importing jax (the PyTorch twins use it): its peak
resident size, and a malloc setting that stops XLA's CPU steps from page-faulting."""

from __future__ import annotations

import os
import platform
import resource
import sys


def process_peak_rss_bytes() -> int:
    """Returns this process's own peak resident set size in bytes.

    On Linux this is `VmHWM` of /proc/self/status: `getrusage`'s `ru_maxrss` survives fork
    and exec, so a child started by a large process would report its parent's peak as its
    own. Elsewhere `ru_maxrss`.
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    scale = 1 if sys.platform == "darwin" else 1024  # Linux reports KiB, macOS bytes.
    return int(rss * scale)


# glibc malloc settings that keep freed memory in the process for reuse: no mmap'd chunks
# (they go back to the OS on free), no trimming of the heap's top, one arena.
MALLOC_TUNABLES = ("glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=68719476736:"
                   "glibc.malloc.arena_max=1")


def reexec_keeping_freed_memory() -> None:
    """Re-executes this process (same interpreter and arguments) with GLIBC_TUNABLES set to
    MALLOC_TUNABLES; returns without doing anything off Linux / glibc or when GLIBC_TUNABLES
    is already set (the user's own setting, or the re-executed process). Call it first.

    Why: XLA on CPU takes each step's temporaries (2.9 GB for ViT-B/16 at batch 8) from
    malloc, which maps them fresh from the OS and unmaps them when the step ends, so every
    step page-faults them in again: 500,000 faults a ViT-B step, and a SigLIP B/16 step took
    8.6 s instead of 5.7 s while another process ran between its steps. Child processes
    inherit the setting.
    """
    if (sys.platform != "linux" or "GLIBC_TUNABLES" in os.environ
            or platform.libc_ver()[0] != "glibc"):
        return
    os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]],
              {**os.environ, "GLIBC_TUNABLES": MALLOC_TUNABLES})
