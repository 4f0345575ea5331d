"""Test set-up: 8 virtual CPU devices and fast-compile XLA flags (tool_env.FAST_COMPILE), set
before jax is imported anywhere."""

import os

from tool_env import FAST_COMPILE

os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8 " + FAST_COMPILE
).strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")
