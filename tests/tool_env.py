"""The environment of the tool processes (python -m tools.train, tests/train_driver.py) that
tests start: a persistent XLA compilation cache that every such process of this pytest session
shares, so that a test which starts the same tiny run ten times compiles its programs once.

Only these processes use the cache (it is named in their environment alone), each running one
training: it compiles a program or loads it, never both. The test process does not use it,
nor does tests/paper_configs_driver.py, which trains and then resumes each config in one
process, and where a resumed run whose SPMD step came from the cache deadlocked.
"""

import atexit
import os
import shutil
import tempfile

# XLA flags of every test process and the tool processes they start: the suite compiles
# hundreds of tiny programs, which these make about twice as fast to compile (backend
# optimisation level 0, XLA:CPU's loop emitters instead of its fusion emitters, no expensive
# LLVM passes) at no change of semantics. Users and tools.benchmark keep XLA's defaults.
FAST_COMPILE = ("--xla_backend_optimization_level=0 --xla_cpu_use_fusion_emitters=false "
                "--xla_llvm_disable_expensive_passes=true")
_cache_dir: str | None = None  # Made by the first tool_env() call: importing FAST_COMPILE alone
# (conftest, the paper-config driver) leaves no directory behind.


def cache_dir() -> str:
    """Returns this session's compilation-cache directory (created on first use, removed at
    exit)."""
    global _cache_dir
    if _cache_dir is None:
        _cache_dir = tempfile.mkdtemp(prefix="tessera-test-xla-cache-")
        atexit.register(shutil.rmtree, _cache_dir, ignore_errors=True)
    return _cache_dir


def tool_env(keep_xla_flags: bool = False) -> dict:
    """Returns os.environ for a tool process with the session's compilation cache and the
    FAST_COMPILE flags; without conftest's other XLA_FLAGS (8 virtual devices) unless
    `keep_xla_flags`."""
    env = {k: v for k, v in os.environ.items() if keep_xla_flags or k != "XLA_FLAGS"}
    if FAST_COMPILE not in env.get("XLA_FLAGS", ""):
        env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " " + FAST_COMPILE).strip()
    # Every program, however quick to compile, so that what is cached does not depend on load.
    env.update(JAX_COMPILATION_CACHE_DIR=cache_dir(),
               JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0")
    return env
