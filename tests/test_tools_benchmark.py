"""tools.benchmark (with the optional timm comparison), framework.hardware, tools.model_table."""

import json
import os
import subprocess
import sys

import pytest

from framework import hardware, profiling
from framework.registry import ConfigError
from tools import benchmark, model_table

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = "configs/synthetic_shapes_vit.py:test"
B16 = "benchmarks/configs/synthetic_shapes_vit_b16.py"


def _torch_and_timm_import():
    try:
        import timm  # noqa: F401
        import torch  # noqa: F401
        from timm.models.vision_transformer import VisionTransformer  # noqa: F401
    except Exception:  # noqa: BLE001  (missing, or a torchvision that does not load)
        return False
    return True


def test_peak_table_and_measured_cpu_peak():
    assert hardware.known_peak_flops("TPU v4") == 275e12
    assert hardware.known_peak_flops("TPU v5 lite") == 197e12
    assert hardware.known_peak_flops("NVIDIA H100 80GB HBM3") == 989e12
    assert hardware.known_peak_flops("NVIDIA A100-SXM4-40GB") == 312e12
    assert hardware.known_peak_flops("Quantum 9000") is None
    peak = hardware.measure_matmul_peak(size=256, repeats=3)
    assert 1e8 < peak < 1e14  # FLOP/s of a CPU: between 0.1 GFLOP/s and 100 TFLOP/s.


@pytest.mark.parametrize("compare", [False, True])
def test_benchmark_end_to_end(tmp_path, capsys, compare):
    if compare and not _torch_and_timm_import():
        pytest.skip("torch + timm (optional extra 'compare') not importable")
    argv = ["--config", TINY, f"--config.data.data_dir={tmp_path / 'data'}", "--steps", "2",
            "--warmup", "1", "--input_batches", "2", "--json", "--out_dir", str(tmp_path)]
    if not compare:  # Keep the optimised HLO and a trace of the last two steps.
        argv += ["--workdir", str(tmp_path / "wd"), "--profile_steps", "2:3"]
    assert benchmark.main(argv + (["--compare"] if compare else [])) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["step_time_s"] > 0 and len(result["step_times_s"]) == 2
    assert result["examples_per_sec"] == pytest.approx(16 / result["step_time_s"])
    assert result["flops_per_step"] > 1e8  # Forward + backward of a 2-layer width-32 ViT.
    assert result["peak_flops"] > 0 and result["peak_flops_source"].startswith("measured")
    assert result["mfu"] == pytest.approx(
        result["flops_per_step"] / result["step_time_s"] / result["peak_flops"])
    assert 0 < result["mfu"] < 1
    assert result["device"].startswith("cpu") and result["compile_time_s"] > 0
    assert result["peak_memory_bytes"] > 1e6 and result["input_examples_per_sec"] > 0
    assert 0 < result["step_memory_bytes"] < result["peak_memory_bytes"]
    saved = json.loads((tmp_path / "synthetic_shapes_vit_test-cpu.json").read_text())
    assert saved["command"].startswith("python -m tools.benchmark --config " + TINY)
    assert saved["step_time_s"] == result["step_time_s"]
    markdown = (tmp_path / "synthetic_shapes_vit_test-cpu.md").read_text()
    assert "| step ms |" in markdown and f"`{TINY}`" in markdown
    if not compare:
        assert "ENTRY" in (tmp_path / "wd" / "train_step.hlo.txt").read_text()
        traces = profiling.trace_files(str(tmp_path / "wd" / "profile"))
        assert any(t.endswith(".xplane.pb") for t in traces), traces
    if compare:
        # The timm twin mirrors the model exactly: same parameter count, a finite loss; it
        # ran in its own process (its peak memory is that process's).
        peer = result["peer"]
        assert peer["library"] == "timm" and peer["params"] == result["params"]
        assert result["speedup_vs_peer"] > 0 and peer["final_loss"] > 0
        assert peer["peak_memory_bytes"] > 1e6
        assert "| train step ms (median) |" in markdown


def test_benchmark_bad_input(tmp_path):
    with pytest.raises(ConfigError, match="config.model.hidden_sise: unknown key"):
        benchmark.main(["--config", TINY, "--config.model.hidden_sise=3",
                        "--out_dir", str(tmp_path)])
    with pytest.raises(SystemExit):
        benchmark.main(["--config", TINY, "--steps", "0"])
    with pytest.raises(SystemExit):  # A trace needs a workdir to go to.
        benchmark.main(["--config", TINY, "--profile_steps", "1:2"])
    with pytest.raises(ConfigError, match="only 3 steps"):
        benchmark.main(["--config", TINY, "--steps", "2", "--warmup", "1", "--workdir",
                        str(tmp_path / "wd"), "--profile_steps", "2:4"])
    with pytest.raises(ConfigError, match="A:B with 1 <= A <= B"):
        profiling.parse_steps("4:2")
    assert not list(tmp_path.iterdir())


def test_timm_twin_refuses_what_it_cannot_mirror():
    from tools import timm_compare

    with pytest.raises(ValueError, match="pool_type='none'"):
        timm_compare.timm_vit_kwargs({"name": "vit_classification", "pool_type": "none"},
                                     (32, 32, 3))
    kwargs = timm_compare.timm_vit_kwargs(
        {"name": "vit_classification", "pool_type": "gap", "hidden_size": 64, "mlp_dim": 128,
         "patch_size": (4, 4), "num_classes": 12}, (32, 32, 3))
    assert kwargs["mlp_ratio"] == 2.0 and kwargs["global_pool"] == "avg"
    assert kwargs["class_token"] is False and kwargs["img_size"] == (32, 32)


def test_model_table_json_and_markdown(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TESSERA_DATA_DIR", str(tmp_path / "data"))
    assert model_table.main([B16, "configs/synthetic_shapes_*.py", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["config"].split("/")[-1], r["arg"]) for r in rows] == [
        ("synthetic_shapes_vit_b16.py", None), ("synthetic_shapes_vit.py", "default"),
        ("synthetic_shapes_vit.py", "test")]
    b16 = rows[0]
    assert set(b16) == {"config", "arg", "params", "gflops_per_view", "ref_params",
                        "ref_gflops"}
    assert b16["params"] == 86_566_888  # ViT-B/16, 1000 classes, posemb over the patches.
    assert b16["gflops_per_view"] == pytest.approx(b16["ref_gflops"], rel=0.01)
    assert rows[1]["params"] > rows[2]["params"] and rows[1]["ref_params"] is None
    assert model_table.main([B16]) == 0
    table = capsys.readouterr().out
    assert "| params (M) | paper (M) | ratio |" in table
    assert f"| `{B16}` | 86.57 | 86.00 | 1.007 | 17.63 | 17.60 | 1.002 |" in table
    with pytest.raises(FileNotFoundError, match="no config file matches"):
        model_table.main(["configs/nothing_*.py"])


BROKEN_AND_GOOD = """
from configs import synthetic_shapes_vit

VARIANTS = ("good", "broken")


def get_config(arg=None):
    if arg == "broken":
        raise RuntimeError("this variant is broken")
    c = synthetic_shapes_vit.get_config("test")
    c.model_input = {"image": "float32[32,32,3]"}
    return c
"""


def test_model_table_reports_a_broken_config_after_the_others(tmp_path, capsys):
    path = tmp_path / "two.py"
    path.write_text(BROKEN_AND_GOOD)
    assert model_table.main([str(path)]) == 1
    out = capsys.readouterr()
    assert f"| `{path}:good` |" in out.out
    assert f"Error: {path}:broken: RuntimeError: this variant is broken" in out.err


def test_step_flops_count_scanned_layers_and_accumulation(tmp_path):
    """XLA counts a loop body once; the benchmark's FLOPs per step must not depend on whether
    the layers are scanned, the batch is split into micro-batches or attention runs
    blockwise (a loop over heads when long; the CPU default)."""
    import jax

    from framework import config as config_lib
    from framework import flops as flops_lib
    from framework import train_state as state_lib
    from framework import trainer

    def config(scan=False, accum=1, attention="xla"):
        c = config_lib.load_config(TINY, [f"data.data_dir={tmp_path / 'data'}"])
        c.model.scan = scan
        c.optimizer.grad_accum_steps = accum
        c.model.attention_implementation = attention
        return c

    plain = benchmark.prepare_train_step(config())[1]["flops_per_step"]
    blockwise = benchmark.prepare_train_step(config(attention="blockwise"))[1]
    assert blockwise["flops_per_step"] == pytest.approx(plain, rel=0.02)
    scanned = benchmark.prepare_train_step(config(scan=True))[1]["flops_per_step"]
    accumulated = benchmark.prepare_train_step(config(accum=2))[1]["flops_per_step"]
    assert scanned == pytest.approx(plain, rel=0.02)
    assert accumulated == pytest.approx(plain, rel=0.02)
    # XLA's count of the scanned program itself covers one of the two layers: what was fixed.
    run = trainer.build(config(scan=True), workdir="(test)")
    with state_lib.mesh_context(run):
        spec = state_lib.state_spec(run)
        train_step = state_lib.train_step_fn(run, spec.tx, spec.schedule)
        lowered = jax.jit(train_step).lower(spec.abstract_state, spec.example)
    assert flops_lib.compiled_flops(lowered) < 0.9 * plain


def test_gpu_script_refuses_without_a_gpu():
    """benchmarks/gpu.sh on a machine without a GPU: one Error: line, exit 2, nothing run."""
    out = subprocess.run(["bash", os.path.join(ROOT, "benchmarks", "gpu.sh")],
                         env={**os.environ, "PYTHON": sys.executable}, capture_output=True,
                         text=True, timeout=300)
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert out.returncode == 2 and not out.stdout, out.stderr
    assert len(lines) == 1 and lines[0].startswith("Error: benchmarks/gpu.sh needs an NVIDIA GPU")
    assert not os.path.exists(os.path.join(ROOT, "benchmarks", "gpu.json"))


@pytest.mark.parametrize("spec,library", [
    ("projects/siglip/configs/synthetic_siglip.py:test", "open_clip"),
    ("projects/vivit/configs/synthetic_motion_vivit.py:tiny-ST", "transformers"),
])
def test_open_clip_and_transformers_twins(tmp_path, capsys, spec, library):
    """The SigLIP and ViViT twins mirror the model (same parameter count) and train; the
    forward pass is timed on both sides. Needs the optional extra 'compare'."""
    pytest.importorskip("torch")
    pytest.importorskip(library)
    overrides = ["--config.batch_size=8", f"--config.data.data_dir={tmp_path / 'data'}"]
    assert benchmark.main(["--config", spec, "--steps", "1", "--warmup", "1", "--compare",
                           "--forward", "--input_batches", "0", "--json", "--out_dir", "",
                           *overrides]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    peer = result["peer"]
    assert peer["library"] == library and peer["final_loss"] > 0
    assert result["forward_speedup_vs_peer"] > 0 and peer["peak_memory_bytes"] > 1e6
    # transformers' ViViT has a position embedding for its class token too (+ width).
    extra = 32 if library == "transformers" else 0
    assert peer["params"] == result["params"] + extra


@pytest.mark.skipif(sys.platform != "linux", reason="glibc tunables are Linux-only")
def test_benchmark_process_reexecutes_keeping_freed_memory():
    """tools.benchmark re-executes itself once with glibc's malloc keeping freed memory; a
    GLIBC_TUNABLES the user set is left alone."""
    from framework import process_memory

    script = ("import os; from framework import process_memory as m; "
              "m.reexec_keeping_freed_memory(); print(os.environ.get('GLIBC_TUNABLES'))")
    env = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"}
    env["PYTHONPATH"] = ROOT
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                         text=True, check=True).stdout.split()
    assert out == [process_memory.MALLOC_TUNABLES]
    env["GLIBC_TUNABLES"] = "glibc.malloc.arena_max=2"
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                         text=True, check=True).stdout.split()
    assert out == ["glibc.malloc.arena_max=2"]
