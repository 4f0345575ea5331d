"""Fork a project: `python -m tools.new_project NAME --from PROJECT [--root REPO]`.

Copies projects/PROJECT to projects/NAME and, in the copy:
- module paths `projects.PROJECT` and file paths `projects/PROJECT/` become `projects.NAME`
  and `projects/NAME/` (a bare `projects/PROJECT` is left: it may name another code base;
  imports of other projects, e.g. the base project a family shares, are kept);
- every registry name the project registers (`<REGISTRY>.register("name")`) moves to the
  fork's namespace, so both projects can be imported together: "PROJECT.x" becomes
  "NAME.x" (a name outside the namespace gets the prefix "NAME."); the names are replaced
  where they stand quoted ("name") or as ops of a preprocess string ("name(k=1)|other") in
  every file, as configs refer to them; the source's former names (`formerly=`) are dropped;
- files under configs/ whose name holds PROJECT are renamed the same way;
- a quoted "PROJECT" (e.g. `config.project = "PROJECT"`) becomes "NAME".
Then it writes tests/test_project_NAME.py: a smoke test that imports the fork, checks its
registry names, loads every config variant, and trains one small variant of each config
file (its VARIANTS entry "test", else "tiny") for 2 steps, with its evaluators and a
checkpoint. Nothing existing is overwritten. From then on the fork's model, losses,
evaluators, data ops and configs are changed inside projects/NAME/ only.
"""

from __future__ import annotations

import argparse
import ast
import keyword
import os
import re
import shutil
import sys

REGISTER = re.compile(r"\b([A-Z_]+)\.register\(\s*[\"']([A-Za-z0-9_.]+)[\"']")
FORMERLY = re.compile(r",\s*formerly=\([^)]*\)")
TINY_VARIANTS = ("test", "tiny")  # In order of preference: one per config file.
SUGGESTED_VARIANT = "tiny"  # The variant the tool suggests training (the README's).
MAX_LINE = 100  # The linter's line length (pyproject.toml).
TEXT_SUFFIXES = (".py", ".md", ".txt", ".json", ".yaml", ".yml", ".cfg", ".toml")


def default_root() -> str:
    """Returns the repository root this tool lives in."""
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def check_names(root: str, name: str, source: str) -> None:
    """Raises ValueError unless projects/`source` exists and `name` is a new snake_case
    package name with no project or smoke test under that name."""
    if not re.fullmatch(r"[a-z][a-z0-9_]*", name) or keyword.iskeyword(name):
        raise ValueError(f"NAME={name!r}: must be a snake_case Python package name "
                         "(lower-case letters, digits, underscores; starting with a letter).")
    projects = os.path.join(root, "projects")
    if not os.path.isfile(os.path.join(projects, source, "__init__.py")):
        known = sorted(d for d in os.listdir(projects)
                       if os.path.isfile(os.path.join(projects, d, "__init__.py")))
        raise ValueError(f"--from {source}: no project projects/{source}/ under {root}; "
                         f"projects there: {', '.join(known) or '(none)'}.")
    for path in (os.path.join(projects, name), test_path(root, name)):
        if os.path.exists(path):
            raise ValueError(f"{path} already exists; pick another NAME (nothing was changed).")


def test_path(root: str, name: str) -> str:
    """Returns the path of the fork's smoke test."""
    return os.path.join(root, "tests", f"test_project_{name}.py")


def _text_files(directory: str) -> list[str]:
    return sorted(os.path.join(d, f) for d, _, files in os.walk(directory) for f in files
                  if f.endswith(TEXT_SUFFIXES))


def registered_names(directory: str) -> list[tuple[str, str]]:
    """Returns [(registry attribute, name)] for every `X.register("name")` under
    `directory`, in file order, without repeats."""
    found: list[tuple[str, str]] = []
    for path in _text_files(directory):
        if path.endswith(".py"):
            with open(path) as f:
                for match in REGISTER.finditer(f.read()):
                    if match.groups() not in found:
                        found.append(match.groups())
    return found


def renamed(old: str, source: str, name: str) -> str:
    """Returns the fork's registry name for the source's `old`: "source.x" -> "name.x",
    any other name "x" -> "name.x"."""
    return name + old[len(source):] if old.startswith(source + ".") else f"{name}.{old}"


def fork(root: str, name: str, source: str) -> dict:
    """Copies projects/`source` to projects/`name` with the renames in the module docstring
    and writes its smoke test. Returns {"project", "test", "registered": [(kind, old,
    new)], "renamed_files": [(old, new)], "tiny": [(config path, variant)]}."""
    check_names(root, name, source)
    src_dir = os.path.join(root, "projects", source)
    dst_dir = os.path.join(root, "projects", name)
    names = {old: renamed(old, source, name) for _, old in registered_names(src_dir)}
    shutil.copytree(src_dir, dst_dir, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    try:
        files = _rename_files(os.path.join(dst_dir, "configs"), source, name)
        replacements = [(re.compile(rf"\bprojects\.{source}\b"), f"projects.{name}"),
                        (re.compile(rf"\bprojects/{source}/"), f"projects/{name}/"),
                        (re.compile(rf"([\"']){source}\1"), rf"\g<1>{name}\g<1>")]
        # A name stands quoted, or as an op of a preprocess string "op1(k=v)|op2".
        replacements += [(re.compile(rf"(?<=[\"'`|]){re.escape(old)}(?=[\"'`|(])"), new)
                         for old, new in names.items()]
        replacements += [(re.compile(rf"\b{re.escape(old)}\.py\b"), f"{new}.py")
                         for old, new in files]
        for path in _text_files(dst_dir):
            with open(path) as f:
                text = f.read()
            for pattern, new in replacements:
                text = pattern.sub(new, text)
            if path.endswith(".py"):
                text = FORMERLY.sub("", text)
            with open(path, "w") as f:
                f.write(text)
        tiny = tiny_configs(root, name)
        registered = [(kind, old, names[old]) for kind, old in registered_names(src_dir)]
        with open(test_path(root, name), "w") as f:
            f.write(smoke_test(name, source, [(k, new) for k, _, new in registered], tiny,
                               has_configs=bool(config_files(root, name))))
    except BaseException:
        shutil.rmtree(dst_dir, ignore_errors=True)
        raise
    return {"project": dst_dir, "test": test_path(root, name), "registered": registered,
            "renamed_files": files, "tiny": tiny, "long_lines": long_lines(dst_dir)}


def long_lines(directory: str) -> list[str]:
    """Returns "path:line" for every Python line under `directory` longer than MAX_LINE."""
    out = []
    for path in _text_files(directory):
        if path.endswith(".py"):
            with open(path) as f:
                out += [f"{path}:{i}" for i, line in enumerate(f, 1)
                        if len(line.rstrip("\n")) > MAX_LINE]
    return out


def suggested_config(root: str, name: str) -> str | None:
    """Returns "path:variant" of the first config of the project with a SUGGESTED_VARIANT
    (else its first small variant), or None when it has none."""
    for path in config_files(root, name):
        if SUGGESTED_VARIANT in variants_of(path):
            return f"{os.path.relpath(path, root)}:{SUGGESTED_VARIANT}"
    tiny = tiny_configs(root, name)
    return f"{tiny[0][0]}:{tiny[0][1]}" if tiny else None


def _rename_files(directory: str, source: str, name: str) -> list[tuple[str, str]]:
    """Renames the files under `directory` whose stem holds `source`; returns [(old stem,
    new stem)]."""
    out = []
    for path in _text_files(directory):
        stem, ext = os.path.splitext(os.path.basename(path))
        if source in stem and stem != "__init__":
            new = stem.replace(source, name)
            os.rename(path, os.path.join(os.path.dirname(path), new + ext))
            out.append((stem, new))
    return out


def config_files(root: str, name: str) -> list[str]:
    """Returns the config files (.py) of projects/`name`/configs, sorted."""
    configs = os.path.join(root, "projects", name, "configs")
    return [p for p in _text_files(configs) if p.endswith(".py")
            and not p.endswith("__init__.py")] if os.path.isdir(configs) else []


def tiny_configs(root: str, name: str) -> list[tuple[str, str]]:
    """Returns [(config path relative to `root`, variant)]: for each config file of the
    project, its first VARIANTS entry in TINY_VARIANTS, read from the file's module-level
    `VARIANTS = (...)` literal (the file is not imported)."""
    out = []
    for path in config_files(root, name):
        tiny = [v for v in TINY_VARIANTS if v in variants_of(path)]
        if tiny:
            out.append((os.path.relpath(path, root), tiny[0]))
    return out


def variants_of(path: str) -> tuple:
    """Returns the module-level `VARIANTS = (...)` literal of the config file at `path`
    (read, not imported); () when there is none."""
    with open(path) as f:
        tree = ast.parse(f.read(), path)
    for node in tree.body:
        if (isinstance(node, ast.Assign) and len(node.targets) == 1
                and getattr(node.targets[0], "id", None) == "VARIANTS"):
            try:
                return tuple(ast.literal_eval(node.value))
            except ValueError:
                return ()
    return ()


SMOKE_TEST = '''"""Smoke test of projects/{name}, a fork of projects/{source} by
tools.new_project.

Imports the project and checks its registry names{what}.
"""

import glob
import importlib
import math
import os

import pytest

from framework import config as config_lib
from framework import registry, trainer
from tools import cli

PROJECT = "{name}"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = sorted(p for p in glob.glob(os.path.join(ROOT, "projects", PROJECT, "configs",
                                                    "*.py")) if not p.endswith("__init__.py"))
REGISTERED = {registered}


def _specs():
    for path in CONFIGS:
        for arg in getattr(config_lib.load_module(path), "VARIANTS", None) or (None,):
            yield path if arg is None else f"{{path}}:{{arg}}"


SPECS = list(_specs())
TINY = {tiny_specs}


def test_registers_its_names():
    package = importlib.import_module(f"projects.{{PROJECT}}")
    assert package.__file__.startswith(os.path.join(ROOT, "projects", PROJECT))
    for kind, name in REGISTERED:
        assert name in getattr(registry, kind), (kind, name)
'''

SMOKE_TEST_CONFIGS = '''

@pytest.mark.parametrize("spec", SPECS)
def test_config_loads(spec):
    config = cli.load_config(spec)
    assert config.project == PROJECT
'''

SMOKE_TEST_TRAIN = '''

@pytest.mark.parametrize("spec", TINY)
def test_tiny_config_trains(spec, tmp_path):
    config = cli.load_config(os.path.join(ROOT, spec), ["checkpoint.async_save=false"])
    config.total_steps = 2  # A smoke test: the step, evaluators and checkpoint all run once.
    config.schedule.warmup_steps = min(config.schedule.get("warmup_steps", 0), 1)
    result = trainer.train_and_evaluate(config, str(tmp_path / "workdir"))
    assert int(result.state.step) == config.total_steps
    assert math.isfinite(result.metrics["train/loss"])
    assert (tmp_path / "workdir" / "metrics.jsonl").exists()
'''


def smoke_test(name: str, source: str, registered: list[tuple[str, str]],
               tiny: list[tuple[str, str]], has_configs: bool = True) -> str:
    """Returns the text of tests/test_project_NAME.py; `tiny` as from tiny_configs;
    without configs (`has_configs` False) it only imports the project."""
    what = ""
    if has_configs:
        what = ", loads every config variant"
    if tiny:
        what += (",\nand trains one small variant of each config file for 2 steps (its VARIANTS "
                 f"entry\n{' else '.join(map(repr, TINY_VARIANTS))})")
    text = SMOKE_TEST.format(name=name, source=source, registered=_list_literal(registered),
                             what=what,
                             tiny_specs=_list_literal([f"{p}:{arg}" for p, arg in tiny]))
    if has_configs:
        text += SMOKE_TEST_CONFIGS
    if tiny:
        text += SMOKE_TEST_TRAIN
    if not (has_configs or tiny):
        text = text.replace("import math\n", "").replace("import pytest\n\n", "")
        text = text.replace("from framework import registry, trainer\nfrom tools import cli\n",
                            "from framework import registry\n")
    return text


def _list_literal(items: list) -> str:
    """Returns a Python list literal with one item per line (short lines for the linter)."""
    return "[" + "".join(f"\n    {item!r}," for item in items) + ("\n]" if items else "]")


def main(argv: list[str] | None = None) -> int:
    """Forks a project from the command line; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m tools.new_project", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", help="the new project's package name (snake_case)")
    parser.add_argument("--from", dest="source", required=True, help="project to copy")
    parser.add_argument("--root", default=default_root(), help="repository root")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    try:
        out = fork(os.path.abspath(args.root), args.name, args.source)
    except ValueError as e:
        print(f"Error: {e}", file=sys.stderr)
        return 2
    print(f"Created {out['project']} and {out['test']}.")
    for kind, old, new in out["registered"]:
        print(f"  {kind}: {old} -> {new}")
    for old, new in out["renamed_files"]:
        print(f"  file: {old}.py -> {new}.py")
    for line in out["long_lines"]:
        print(f"  warning: {line} is longer than {MAX_LINE} characters after the rename; "
              "`ruff check` will flag it until it is rewrapped.")
    suggestion = suggested_config(os.path.abspath(args.root), args.name)
    if suggestion:
        print(f"Try: python -m tools.train --config {suggestion} --workdir workdirs/{args.name}")
    elif config_files(os.path.abspath(args.root), args.name):
        print(f"No small variant ({' or '.join(TINY_VARIANTS)}) in its configs: the smoke "
              "test imports the project and loads its configs only.")
    else:
        print("It has no configs (a base project): the smoke test imports it only.")
    print(f"Test: python -m pytest -q {os.path.relpath(out['test'], os.path.abspath(args.root))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
