"""Runs tools.train in a subprocess for the resume and kill tests, with observers and holds.

Usage: python tests/train_driver.py --record FILE [--hold_commit_of STEP]
    [--hold_after_save STEP] [--hold_in_step STEP] [--release_file FILE] <tools.train flags>

--record FILE: appends one line per train batch (eval batches carry a mask and are not
recorded): the sha1 of the batch bytes.
--hold_commit_of STEP: when orbax is about to commit checkpoint STEP (the atomic rename of its
temporary directory), prints "HOLDING COMMIT STEP" and blocks, so that the test can kill the
process during the asynchronous save.
--hold_after_save STEP: once checkpoint STEP is committed, prints "HOLDING AFTER SAVE STEP"
and blocks the training loop (right after a save).
--hold_in_step STEP: after the batch of step STEP is loaded (and recorded) and before the
step runs, prints "HOLDING IN STEP STEP" and blocks (mid-step).
--release_file FILE: a hold ends when FILE exists (default: holds last an hour).
8 virtual CPU devices unless XLA_FLAGS already sets --xla_force_host_platform_device_count.
"""

import os
import sys

if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
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
    hold_after_save = _pop_flag(argv, "--hold_after_save")
    hold_in_step = _pop_flag(argv, "--hold_in_step")
    release_file = _pop_flag(argv, "--release_file")

    import hashlib
    import time

    import numpy as np

    from framework import checkpoint, sharding

    def block(message):
        print(message, flush=True)
        end = time.time() + 3600
        while time.time() < end and not (release_file and os.path.exists(release_file)):
            time.sleep(0.05)

    step = {"now": 0}
    original_restore_latest = checkpoint.Checkpointer.restore_latest

    def tracking_restore_latest(self, *args, **kwargs):
        restored = original_restore_latest(self, *args, **kwargs)
        step["now"] = restored[0] if restored else 0
        return restored

    checkpoint.Checkpointer.restore_latest = tracking_restore_latest

    original = sharding.shard_batch

    def observing_shard_batch(local_batch, mesh):
        if "mask" in local_batch:  # An eval batch.
            return original(local_batch, mesh)
        step["now"] += 1
        if record:
            digest = hashlib.sha1()
            for key in sorted(local_batch):
                digest.update(np.ascontiguousarray(local_batch[key]).tobytes())
            with open(record, "a") as f:
                f.write(digest.hexdigest() + "\n")
        if hold_in_step and step["now"] == int(hold_in_step):
            block(f"HOLDING IN STEP {hold_in_step}")
        return original(local_batch, mesh)

    sharding.shard_batch = observing_shard_batch

    if hold_after_save:
        original_save = checkpoint.Checkpointer.save

        def holding_save(self, save_step, *args, **kwargs):
            started = original_save(self, save_step, *args, **kwargs)
            if save_step == int(hold_after_save):
                self.wait()
                block(f"HOLDING AFTER SAVE {hold_after_save}")
            return started

        checkpoint.Checkpointer.save = holding_save

    if hold:
        from orbax.checkpoint._src.path import async_path

        original_rename = async_path.rename

        async def holding_rename(src, dst):
            if os.path.basename(str(dst)) == hold:
                block(f"HOLDING COMMIT {hold}")
            return await original_rename(src, dst)

        async_path.rename = holding_rename

    from absl import app

    from tools import train

    sys.argv = argv
    app.run(train.main, argv=argv, flags_parser=train.parse_flags)


if __name__ == "__main__":
    main()
