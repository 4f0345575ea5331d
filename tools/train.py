"""Train a config: `python -m tools.train --config FILE.py[:ARG] --workdir DIR [--config.KEY=V]`.

Starting again with the same --workdir resumes from the latest checkpoint there. SIGTERM or
a first Ctrl-C saves a checkpoint after the current step and exits 0; a second Ctrl-C aborts
at once (exit 130). Several processes: --coordinator, --num_processes and --process_id (or
--distributed); tools/launch_local starts them on one machine. Prints a banner, progress,
eval and save lines and a summary; `--verbosity=0` (absl's flag) adds the libraries' logs.
Exit status: 2 for a config or data error (or a workdir in use by another run), 3 when a loss
or gradient became NaN/Inf, 4 when a write to the workdir failed (e.g. a full disk).
"""

from __future__ import annotations

import logging
import os
import sys

from absl import app, flags

from tools import cli

flags.DEFINE_string("config", None, "Config file and variant: path/to/config.py[:arg].")
flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics and config.json.")
flags.DEFINE_integer("cpu_devices", 0, "If > 0, run on this many virtual CPU devices "
                     "(sets XLA_FLAGS before JAX starts), e.g. to try a sharded mesh on a laptop.")
flags.DEFINE_integer("stop_at_step", 0, "If > 0, checkpoint and exit after this step (the "
                     "schedule still spans config.total_steps); run again to continue.")
flags.DEFINE_string("coordinator", None, "Multi-process: address host:port of process 0's "
                    "coordinator service (with --num_processes and --process_id).")
flags.DEFINE_integer("num_processes", 0, "Multi-process: the number of processes of the job.")
flags.DEFINE_integer("process_id", -1, "Multi-process: this process's index in "
                     "[0, --num_processes).")
flags.DEFINE_bool("distributed", False, "Multi-process with the coordinator, process count and "
                  "index detected by jax.distributed.initialize() (TPU pods, SLURM, ...).")
flags.DEFINE_integer("heartbeat_timeout", 60, "Multi-process: seconds without a heartbeat "
                     "after which a process counts as dead; then every other process stops "
                     "(no hang on a collective), and a restart resumes from the last checkpoint.")
flags.DEFINE_enum("on_config_change", "warn", ["warn", "refuse"],
                  "When --workdir holds a config.json that differs from this run's config: "
                  "'warn' logs the diff and goes on; 'refuse' stops before touching anything.")
flags.DEFINE_string("profile_steps", None, "A:B writes a jax.profiler trace of steps A to B "
                    "(1-based, inclusive) to WORKDIR/profile, for TensorBoard or Perfetto.")
FLAGS = flags.FLAGS


def parse_flags(argv: list[str]) -> list[str]:
    """Parses absl flags from `argv`, setting aside `--config.KEY=VALUE` overrides.

    Returns the remaining positional arguments; the overrides are kept in OVERRIDES.
    """
    rest = []
    for arg in argv[1:]:
        if arg.startswith("--config."):
            OVERRIDES.append(arg[len("--config."):])
        else:
            rest.append(arg)
    return FLAGS([argv[0]] + rest)


OVERRIDES: list[str] = []


def use_cpu_devices(count: int) -> None:
    """Makes JAX (not yet imported) start with `count` virtual CPU devices."""
    if "jax" in sys.modules:
        raise RuntimeError("--cpu_devices must be applied before JAX is imported.")
    os.environ["JAX_PLATFORMS"] = "cpu"
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                               + f" --xla_force_host_platform_device_count={count}").strip()


def distributed_args() -> dict | None:
    """Returns jax.distributed.initialize's keyword arguments from the flags, or None.

    None means a single-process run; {} means "detect" (--distributed). Raises ConfigError
    for an incomplete or inconsistent set of --coordinator/--num_processes/--process_id.
    """
    from framework.registry import ConfigError

    explicit = FLAGS.coordinator or FLAGS.num_processes or FLAGS.process_id >= 0
    if not explicit:
        return {} if FLAGS.distributed else None
    if not (FLAGS.coordinator and FLAGS.num_processes > 0 and FLAGS.process_id >= 0):
        raise ConfigError("--coordinator, --num_processes and --process_id go together, e.g. "
                          "--coordinator 127.0.0.1:12345 --num_processes 2 --process_id 0 "
                          "(or use --distributed to let jax detect them).")
    if FLAGS.process_id >= FLAGS.num_processes:
        raise ConfigError(f"--process_id={FLAGS.process_id}: must be in "
                          f"[0, --num_processes={FLAGS.num_processes}).")
    return {"coordinator_address": FLAGS.coordinator, "num_processes": FLAGS.num_processes,
            "process_id": FLAGS.process_id}


def initialize_distributed(kwargs: dict, heartbeat_timeout: int = 60) -> None:
    """Joins the multi-process job (before any JAX computation); on CPU, collectives use gloo.

    A process silent for `heartbeat_timeout` seconds counts as dead, and the coordination
    service then stops every other process of the job.
    """
    import jax

    if os.environ.get("JAX_PLATFORMS", "") == "cpu":
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(**kwargs, heartbeat_timeout_seconds=heartbeat_timeout)


def exit_job_on_failure(error: BaseException) -> None:
    """Ends this process of a multi-process job at once, saying why, when it failed (most
    often because another process died and a collective broke). A normal exit would wait
    for every process at JAX's shutdown barrier, which a dead process never reaches."""
    import jax

    print(f"Stopped: process {jax.process_index()} of {jax.process_count()} failed "
          f"({type(error).__name__}: {str(error).strip()[:400]}). If another process of the "
          "job died, that is the cause; restart the whole job to resume from the last "
          "checkpoint.", file=sys.stderr, flush=True)
    logging.shutdown()
    os._exit(1)


def main(argv: list[str]) -> None:
    """Loads the config, then trains and evaluates it in --workdir."""
    del argv
    if FLAGS.cpu_devices:
        use_cpu_devices(FLAGS.cpu_devices)
    from framework import checkpoint, console, guards, profiling, trainer
    from framework.registry import ConfigError

    cli.quiet_logs(verbose=FLAGS["verbosity"].present)
    distributed = None
    try:
        if not FLAGS.config:
            raise ConfigError("--config: required, e.g. --config configs/synthetic_shapes_vit.py")
        if not FLAGS.workdir:
            raise ConfigError("--workdir: required (the directory for checkpoints and metrics).")
        profile_steps = profiling.parse_steps(FLAGS.profile_steps)
        config = cli.load_config(FLAGS.config, OVERRIDES)
        distributed = distributed_args()
        if distributed is not None:
            initialize_distributed(distributed, FLAGS.heartbeat_timeout)
            import jax

            if jax.process_index() != 0:  # Process 0 logs for the job; the others warn only.
                logging.getLogger().setLevel(logging.WARNING)
        console.say(f"Config   {FLAGS.config}" + (
            f" with {len(OVERRIDES)} override{'s' if len(OVERRIDES) > 1 else ''}"
            if OVERRIDES else ""))
        trainer.train_and_evaluate(config, FLAGS.workdir, FLAGS.stop_at_step or None,
                                   on_config_change=FLAGS.on_config_change,
                                   profile_steps=profile_steps)
    except ConfigError as e:
        print(f"Error: {e}", file=sys.stderr)
        sys.exit(2)
    except guards.NonFiniteError as e:
        print(f"Stopped: {e}", file=sys.stderr)
        sys.exit(3)
    except checkpoint.WorkdirWriteError as e:
        print(f"Stopped: {e}", file=sys.stderr)
        sys.exit(4)
    except KeyboardInterrupt:
        print("Aborted (Ctrl-C); the steps since the last checkpoint are lost.",
              file=sys.stderr)
        sys.exit(130)
    except Exception as e:
        if distributed is not None:
            exit_job_on_failure(e)
        raise


if __name__ == "__main__":
    app.run(main, flags_parser=parse_flags)
