"""tools.new_project: fork a project in a temporary copy of the repository, then run the
fork's generated smoke test there (which trains the fork's tiny configs)."""

import os
import re
import shutil
import subprocess
import sys

import pytest

from tools import new_project

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROJECTS = os.path.join(ROOT, "projects")


def _source_project():
    """ViViT when it exists, else the first project with a tiny config variant."""
    names = sorted(d for d in os.listdir(PROJECTS)
                   if os.path.isfile(os.path.join(PROJECTS, d, "__init__.py")))
    with_tiny = [n for n in names
                 if new_project.tiny_configs(ROOT, n) and new_project.registered_names(
                     os.path.join(PROJECTS, n))]
    if "vivit" in with_tiny:
        return "vivit"
    if not with_tiny:
        pytest.skip("no project with a tiny config variant to fork yet")
    return with_tiny[0]


@pytest.fixture(scope="module")
def repo_copy(tmp_path_factory):
    """A copy of the repository's code (framework, configs, tools, one project)."""
    source = _source_project()
    root = tmp_path_factory.mktemp("repo")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("framework", "configs", "tools"):
        shutil.copytree(os.path.join(ROOT, name), root / name, ignore=ignore)
    shutil.copytree(os.path.join(PROJECTS, source), root / "projects" / source, ignore=ignore)
    shutil.copy(os.path.join(PROJECTS, "__init__.py"), root / "projects" / "__init__.py")
    (root / "tests").mkdir()
    shutil.copy(os.path.join(ROOT, "tests", "conftest.py"), root / "tests" / "conftest.py")
    shutil.copy(os.path.join(ROOT, "pyproject.toml"), root / "pyproject.toml")
    return root, source


def test_fork_trains_its_tiny_configs(repo_copy, capsys):
    root, source = repo_copy
    assert new_project.main(["forked", "--from", source, "--root", str(root)]) == 0
    out = capsys.readouterr().out
    fork = root / "projects" / "forked"
    assert not os.path.exists(os.path.join(PROJECTS, "forked"))  # The real repo is untouched.

    # Every registry name is renamed, and nothing in the fork imports the source project.
    for kind, old in new_project.registered_names(os.path.join(PROJECTS, source)):
        assert f"{kind}: {old} -> " in out
    for path in fork.rglob("*.py"):
        text = path.read_text()
        assert not re.search(rf"\bprojects\.{source}\b", text), path
        for _, old in new_project.registered_names(os.path.join(PROJECTS, source)):
            assert f'register("{old}")' not in text, path
    tiny = new_project.tiny_configs(str(root), "forked")
    assert tiny and all("forked" in path for path, _ in tiny)

    test_file = root / "tests" / "test_project_forked.py"
    lint = subprocess.run([sys.executable, "-m", "ruff", "check", str(test_file)], cwd=root,
                          capture_output=True, text=True)  # With the repository's settings.
    assert lint.returncode == 0, lint.stdout
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "PYTHONPATH")}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(test_file)],
        cwd=root, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    passed = int(re.search(r"(\d+) passed", result.stdout)[1])
    assert passed >= 2 + len(tiny) and "skipped" not in result.stdout


def test_fork_refuses_bad_names(repo_copy, capsys):
    root, source = repo_copy
    before = sorted(os.listdir(root / "projects"))
    assert new_project.main(["Bad-Name", "--from", source, "--root", str(root)]) == 2
    assert "snake_case" in capsys.readouterr().err
    assert new_project.main(["other", "--from", "nothing", "--root", str(root)]) == 2
    assert "projects there:" in capsys.readouterr().err
    assert new_project.main([source, "--from", source, "--root", str(root)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert sorted(os.listdir(root / "projects")) == before
