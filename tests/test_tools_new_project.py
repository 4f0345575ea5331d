"""tools.new_project in a temporary copy of the repository: every project forks into
lint-clean code confined to its new folder and its generated test; a layer changed inside
projects/myvivit leaves ViViT and MTV outputs unchanged; the generated smoke tests pass (the
ViViT fork's tiny config trains)."""

import contextlib
import hashlib
import io
import os
import re
import shutil
import subprocess
import sys

import jax
import numpy as np
import pytest
from flax import serialization

from framework import config as config_lib
from framework import flops, registry, trees
from tools import cli, new_project

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROJECTS = os.path.join(ROOT, "projects")
SOURCES = sorted(d for d in os.listdir(PROJECTS)
                 if os.path.isfile(os.path.join(PROJECTS, d, "__init__.py")))
MODELS = {"vivit": "projects/vivit/configs/synthetic_motion_vivit.py:test",
          "mtv": "projects/mtv/configs/synthetic_motion_mtv.py:test",
          "myvivit": "projects/myvivit/configs/synthetic_motion_myvivit.py:test"}
# The fork's change: a residual nonlinearity on the tubelet embedding (same parameters).
STEM = '        )(video)\n        batch, t, h, w, width = x.shape\n'
CHANGED_STEM = ('        )(video)\n        x = out["stem"] = x + jnp.tanh(x)\n'
                '        batch, t, h, w, width = x.shape\n')


def _snapshot(root):
    """{path relative to root: sha1 of its bytes} of every file outside __pycache__."""
    out = {}
    for directory, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        for name in files:
            path = os.path.join(directory, name)
            with open(path, "rb") as f:
                out[os.path.relpath(path, root)] = hashlib.sha1(f.read()).hexdigest()
    return out


@pytest.fixture(scope="module")
def forked(tmp_path_factory):
    """A copy of the repository's code in which every project P was forked as myP:
    (root, {P: the tool's output}, files changed by the forks)."""
    root = tmp_path_factory.mktemp("repo")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("framework", "configs", "tools", "projects"):
        shutil.copytree(os.path.join(ROOT, name), root / name, ignore=ignore)
    (root / "tests").mkdir()
    for name in ("pyproject.toml", "tests/conftest.py", "tests/tool_env.py"):
        shutil.copy(os.path.join(ROOT, name), root / name)
    before = _snapshot(root)
    outputs = {}
    for source in SOURCES:
        with contextlib.redirect_stdout(io.StringIO()) as out:
            assert new_project.main([f"my{source}", "--from", source, "--root", str(root)]) == 0
        outputs[source] = out.getvalue()
    after = _snapshot(root)
    changed = sorted(p for p in set(before) | set(after) if before.get(p) != after.get(p))
    return root, outputs, changed


def test_forks_are_confined_renamed_and_lint_clean(forked):
    root, outputs, changed = forked
    assert not os.path.exists(os.path.join(PROJECTS, "myvivit"))  # The real repo is untouched.
    allowed = tuple(f"projects/my{s}/" for s in SOURCES)
    tests = {f"tests/test_project_my{s}.py" for s in SOURCES}
    assert [p for p in changed if not p.startswith(allowed) and p not in tests] == []
    for source in SOURCES:
        out, fork = outputs[source], root / "projects" / f"my{source}"
        assert "warning" not in out
        suggested = re.search(r"--config (\S+):(\S+) --workdir", out)
        if suggested:  # The suggested variant exists (the README's ':tiny').
            variants = new_project.variants_of(str(root / suggested[1]))
            assert suggested[2] == "tiny" and suggested[2] in variants
        registered = new_project.registered_names(os.path.join(PROJECTS, source))
        for kind, old in registered:
            assert f"{kind}: {old} -> my{source}." in out
        for path in fork.rglob("*.py"):
            text = path.read_text()
            assert not re.search(rf"\bprojects\.{source}\b", text), path
            assert "formerly=" not in text, path
            for _, old in registered:
                assert f'register("{old}"' not in text, path
    # A fork of a project built on a base project keeps importing the base.
    assert "from projects.vivit.backbone import ViViT" in (
        root / "projects" / "mymtv" / "baseline.py").read_text()
    assert "import projects.image_text" in (
        root / "projects" / "mysiglip" / "__init__.py").read_text()
    lint = subprocess.run([sys.executable, "-m", "ruff", "check", "projects", "tests"],
                          cwd=root, capture_output=True, text=True)
    assert lint.returncode == 0, lint.stdout


ISOLATION_TEST = '''"""Written by tests/test_tools_new_project.py: with the same params,
ViViT and MTV give the outputs the unforked repository gave; the changed fork does not."""

import numpy as np
from flax import serialization

from framework import config as config_lib
from framework import registry
from tools import cli

MODELS = {models!r}


def _apply(project, spec, params, inputs):
    config = cli.load_config(spec)
    model = registry.MODELS.build(config.model.name, config_lib.kwargs_of(config.model),
                                  "config.model")
    return np.asarray(model.apply({{"params": params}}, inputs))


def test_fork_changed_only_itself():
    with open({reference!r}, "rb") as f:
        reference = serialization.msgpack_restore(f.read())
    for project in ("vivit", "mtv"):
        ref = reference[project]
        got = _apply(project, MODELS[project], ref["params"], ref["inputs"])
        np.testing.assert_allclose(got, ref["logits"], rtol=0, atol=1e-6)
    vivit = reference["vivit"]
    fork = _apply("myvivit", MODELS["myvivit"], vivit["params"], vivit["inputs"])
    assert np.abs(fork - vivit["logits"]).max() > 1e-3
'''


def _reference(project):
    """Params (randomised, so that no head is all zeros), inputs and logits of a project's
    test model, computed with the repository's own code."""
    config = cli.load_config(os.path.join(ROOT, MODELS[project]))
    model = registry.MODELS.build(config.model.name, config_lib.kwargs_of(config.model),
                                  "config.model")
    rng = np.random.default_rng(0)
    inputs = {k: rng.normal(size=s.shape).astype(s.dtype) for k, s in
              flops.abstract_example_batch(config.model_input, batch_size=2).items()}
    params = trees.unbox(model.init(jax.random.key(0), inputs)["params"])
    params = jax.tree.map(
        lambda p: np.asarray(p) + rng.normal(0, 0.05, p.shape).astype(np.float32), params)
    logits = np.asarray(model.apply({"params": params}, inputs))
    return {"params": params, "inputs": inputs, "logits": logits}


def test_fork_changes_a_layer_and_its_smoke_tests_pass(forked, tmp_path):
    root, _, _ = forked
    backbone = root / "projects" / "myvivit" / "backbone.py"
    text = backbone.read_text()
    assert text.count(STEM) == 1
    backbone.write_text(text.replace(STEM, CHANGED_STEM))
    reference = tmp_path / "reference.msgpack"
    reference.write_bytes(serialization.msgpack_serialize(
        {p: _reference(p) for p in ("vivit", "mtv")}))
    (root / "tests" / "test_fork_isolation.py").write_text(
        ISOLATION_TEST.format(models=MODELS, reference=str(reference)))

    # Every generated smoke test imports its fork and loads its configs; the ViViT fork's
    # (with the changed layer) also trains its tiny config.
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "PYTHONPATH")}
    env["TESSERA_DATA_DIR"] = str(tmp_path / "data")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests",
         "-k", "not tiny_config_trains or myvivit"],
        cwd=root, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "skipped" not in result.stdout and "deselected" in result.stdout
    assert int(re.search(r"(\d+) passed", result.stdout)[1]) >= 2 * len(SOURCES)


def test_fork_refuses_bad_names(forked, capsys):
    root, _, _ = forked
    before = sorted(os.listdir(root / "projects"))
    assert new_project.main(["Bad-Name", "--from", "vivit", "--root", str(root)]) == 2
    assert "snake_case" in capsys.readouterr().err
    assert new_project.main(["other", "--from", "nothing", "--root", str(root)]) == 2
    assert "projects there:" in capsys.readouterr().err
    assert new_project.main(["myvivit", "--from", "vivit", "--root", str(root)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert sorted(os.listdir(root / "projects")) == before
