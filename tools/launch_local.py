"""Start an N-process job on this machine (127.0.0.1), e.g. to try multi-host training.

    python -m tools.launch_local --num_processes 2 -- \\
        python -m tools.train --cpu_devices 4 --config configs/synthetic_shapes_vit.py:test \\
        --workdir /tmp/two_hosts

Each process runs the command after `--` with `--coordinator 127.0.0.1:PORT --num_processes N
--process_id I` appended (PORT: a free port). Their output is printed with an "[I] " prefix,
less gloo's "[Gloo] Rank R is connected to N peer ranks" lines when all N peers are connected
(printed by its C++ library at every connection, they cannot be turned off in the processes).
When one process fails the others are stopped; SIGTERM/SIGINT to the launcher is passed on to
every process as SIGTERM (which then checkpoint and exit; a Ctrl-C in the terminal reaches
the processes too, so a second one aborts them). `--timeout` bounds the whole job. The exit
status is the first non-zero status of a process (124 on timeout), else 0.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

from tools import cli


def free_port() -> int:
    """Returns a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def process_commands(command: list[str], num_processes: int, port: int) -> list[list[str]]:
    """Returns the command of each process: `command` plus its coordinator flags."""
    return [command + [f"--coordinator=127.0.0.1:{port}", f"--num_processes={num_processes}",
                       f"--process_id={index}"] for index in range(num_processes)]


_GLOO_CONNECTED = re.compile(r"\[Gloo\] Rank \d+ is connected to (\d+) peer ranks\. "
                             r"Expected number of connected peer ranks is : (\d+)")


def _relay(index: int, stream, out) -> None:
    for line in stream:
        connected = _GLOO_CONNECTED.fullmatch(line.strip())
        if connected and connected.group(1) == connected.group(2):
            continue
        out.write(f"[{index}] {line}")
        out.flush()


def launch(command: list[str], num_processes: int, timeout: float, out=sys.stdout,
           grace: float = 30.0, gpu_per_process: bool = False) -> int:
    """Runs `command` as `num_processes` processes; returns the job's exit status.

    Stops every process (SIGTERM, then SIGKILL after `grace` seconds) when one fails or when
    `timeout` seconds have passed; never leaves a process behind. With `gpu_per_process`,
    process I sees only GPU I (CUDA_VISIBLE_DEVICES=I).
    """
    port = free_port()
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              env=dict(os.environ, CUDA_VISIBLE_DEVICES=str(i))
                              if gpu_per_process else None)
             for i, cmd in enumerate(process_commands(command, num_processes, port))]
    relays = [threading.Thread(target=_relay, args=(i, p.stdout, out), daemon=True)
              for i, p in enumerate(procs)]
    for thread in relays:
        thread.start()

    def forward(signum, frame):
        del signum, frame
        for proc in procs:
            if proc.poll() is None:  # SIGINT too: one clean stop, not a second Ctrl-C.
                proc.send_signal(signal.SIGTERM)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGINT)}
    status = 0
    try:
        deadline = time.monotonic() + timeout
        while [p.poll() for p in procs].count(None):  # Polls every process (no short-cut).
            failed = [p.returncode for p in procs if p.returncode not in (None, 0)]
            if failed or time.monotonic() > deadline:
                status = failed[0] if failed else 124
                break
            time.sleep(0.2)
        status = status or next((p.returncode for p in procs if p.returncode), 0)
    finally:
        _stop(procs, grace)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for thread in relays:
            thread.join(timeout=5)
    return status


def _stop(procs: list[subprocess.Popen], grace: float) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    end = time.monotonic() + grace
    for proc in procs:
        try:
            proc.wait(timeout=max(end - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main(argv: list[str] | None = None) -> int:
    """Parses `--num_processes N [--timeout S] -- COMMAND...` and runs the job."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--" not in argv:
        print("Error: no command; usage: python -m tools.launch_local --num_processes N "
              "[--timeout S] -- COMMAND", file=sys.stderr)
        return 2
    split = argv.index("--")
    parser = cli.ArgumentParser(prog="python -m tools.launch_local")
    parser.add_argument("--num_processes", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=3600.0,
                        help="Seconds before every process is stopped (exit status 124).")
    parser.add_argument("--gpu_per_process", action="store_true",
                        help="Process I sees only GPU I (CUDA_VISIBLE_DEVICES=I).")
    args = parser.parse_args(argv[:split])
    command = argv[split + 1:]
    if args.num_processes < 1 or not command:
        parser.error("--num_processes must be >= 1 and a command must follow `--`.")
    return launch(command, args.num_processes, args.timeout,
                  gpu_per_process=args.gpu_per_process)


if __name__ == "__main__":
    sys.exit(main())
