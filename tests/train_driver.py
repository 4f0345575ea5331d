"""Runs tools.train in a subprocess for the resume and kill tests, with two observers.

Usage: python tests/train_driver.py --record FILE [--hold_commit_of STEP] <tools.train flags>

--record FILE: appends one line per train batch (eval batches carry a mask and are not
recorded): the sha1 of the batch bytes.
--hold_commit_of STEP: when orbax is about to commit checkpoint STEP (the atomic rename of its
temporary directory), prints "HOLDING COMMIT STEP" and blocks, so that the test can kill the
process during the asynchronous save.
"""

import os
import sys

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                           + " --xla_force_host_platform_device_count=8").strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _pop_flag(argv, name):
    if name in argv:
        i = argv.index(name)
        value = argv[i + 1]
        del argv[i:i + 2]
        return value
    return None


def main():
    argv = list(sys.argv)
    record = _pop_flag(argv, "--record")
    hold = _pop_flag(argv, "--hold_commit_of")

    import hashlib
    import time

    import numpy as np

    from framework import sharding

    if record:
        original = sharding.shard_batch

        def recording_shard_batch(local_batch, mesh):
            if "mask" in local_batch:  # An eval batch.
                return original(local_batch, mesh)
            digest = hashlib.sha1()
            for key in sorted(local_batch):
                digest.update(np.ascontiguousarray(local_batch[key]).tobytes())
            with open(record, "a") as f:
                f.write(digest.hexdigest() + "\n")
            return original(local_batch, mesh)

        sharding.shard_batch = recording_shard_batch

    if hold:
        from orbax.checkpoint._src.path import async_path

        original_rename = async_path.rename

        async def holding_rename(src, dst):
            if os.path.basename(str(dst)) == hold:
                print(f"HOLDING COMMIT {hold}", flush=True)
                time.sleep(3600)
            return await original_rename(src, dst)

        async_path.rename = holding_rename

    from absl import app

    from tools import train

    sys.argv = argv
    app.run(train.main, argv=argv, flags_parser=train.parse_flags)


if __name__ == "__main__":
    main()
