"""A process's own peak resident memory, without importing jax (the PyTorch twins use it)."""

from __future__ import annotations

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
