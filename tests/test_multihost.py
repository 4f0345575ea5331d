"""The launcher and the multi-process flags of tools.train. (That two processes x 4 virtual CPU
devices train exactly like one process x 8 is tested in tests/test_multihost_faults.py, with
the restart of a job one of whose processes was killed.)"""

import io
import os
import re
import subprocess
import sys

import pytest

from tools import launch_local

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO = "configs/synthetic_shapes_vit.py:test"


def test_launcher_stops_the_job_when_a_process_fails(tmp_path):
    # Process 1 fails at once; process 0 would wait forever and must be stopped.
    script = ("import sys, time; i = int(sys.argv[-1].split('=')[1]); "
              "sys.exit(3) if i == 1 else time.sleep(600)")
    status = launch_local.launch([sys.executable, "-c", script], 2, timeout=120,
                                 out=open(os.devnull, "w"), grace=5)
    assert status == 3


@pytest.mark.parametrize("flags,message", [
    (["--coordinator=127.0.0.1:1"], "--coordinator, --num_processes and --process_id go"),
    (["--coordinator=127.0.0.1:1", "--num_processes=2", "--process_id=2"],
     r"--process_id=2: must be in \[0, --num_processes=2\)"),
])
def test_train_rejects_incomplete_multiprocess_flags(tmp_path, flags, message):
    out = subprocess.run(
        [sys.executable, "-m", "tools.train", "--config", DEMO, "--workdir",
         str(tmp_path / "w"), *flags], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "Error:" in out.stderr
    assert re.search(message, out.stderr), out.stderr[-2000:]
    assert not (tmp_path / "w").exists()


def test_launcher_drops_gloo_connection_chatter_only():
    lines = ["[Gloo] Rank 0 is connected to 7 peer ranks. Expected number of connected peer "
             "ranks is : 7\n",
             "[Gloo] Rank 1 is connected to 6 peer ranks. Expected number of connected peer "
             "ranks is : 7\n",
             "step 5/10\n"]
    out = io.StringIO()
    launch_local._relay(1, iter(lines), out)
    assert out.getvalue() == "[1] " + lines[1] + "[1] step 5/10\n"
