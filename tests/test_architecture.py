"""ARCHITECTURE.md matches the code: every file, folder and module it names exists; framework
never imports or names projects; the README links the document and nothing outside the
repository."""

import ast
import glob
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = ("framework", "projects", "tools", "configs", "tests")


def _read(name):
    with open(os.path.join(ROOT, name)) as f:
        return f.read()


def _spans(text):
    """Returns the backtick code spans of Markdown `text`, and the lines of its code blocks."""
    blocks = re.findall(r"```.*?\n(.*?)```", text, flags=re.S)
    inline = re.findall(r"`([^`\n]+)`", re.sub(r"```.*?```", "", text, flags=re.S))
    return inline, [line for block in blocks for line in block.splitlines()]


def _module_exists(dotted):
    """True when `dotted` is a module or package of the repository, or a module followed by
    a name it defines at its top level (function, class or assignment)."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        base = os.path.join(ROOT, *parts[:cut])
        path = base + ".py" if os.path.isfile(base + ".py") else os.path.join(base,
                                                                             "__init__.py")
        if not os.path.isfile(path):
            continue
        rest = parts[cut:]
        if not rest:
            return True
        if len(rest) > 1:
            return False
        with open(path) as f:
            tree = ast.parse(f.read())
        names = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
        names |= {t.id for n in tree.body if isinstance(n, ast.Assign) for t in n.targets
                  if isinstance(t, ast.Name)}
        return rest[0] in names
    return False


def test_every_path_and_module_named_in_architecture_exists():
    inline, block_lines = _spans(_read("ARCHITECTURE.md"))
    paths, modules = set(), set()
    for span in inline:
        for token in re.split(r"[\s(),]+", span):
            token = token.strip("`'\".:")
            if re.fullmatch(r"(?:[\w.-]+/)+[\w.-]*", token) and "<" not in token:
                if token.split("/")[0] in PACKAGES and not re.search("NAME|PROJECT", token):
                    paths.add(token)
            elif re.fullmatch(rf"(?:{'|'.join(PACKAGES)})(?:\.\w+)+", token):
                if "PROJECT" not in token and "NAME" not in token:
                    modules.add(token)
            elif re.fullmatch(r"[\w-]+\.(?:py|md|toml)", token):
                paths.add(token)
    for line in block_lines:
        first = line.split()[0] if line.split() else ""
        if first.endswith("/"):
            paths.add(first)
    assert len(paths) > 20 and len(modules) > 5  # The document names the code it describes.
    missing = sorted(p for p in paths if not os.path.exists(os.path.join(ROOT, p)))
    missing += sorted(m for m in modules if not _module_exists(m))
    assert missing == [], f"ARCHITECTURE.md names what does not exist: {missing}"


def test_framework_never_imports_or_names_projects():
    for path in glob.glob(os.path.join(ROOT, "framework", "**", "*.py"), recursive=True):
        with open(path) as f:
            hits = [i for i, line in enumerate(f, 1) if "projects" in line]
        assert hits == [], f"{os.path.relpath(path, ROOT)} names projects at lines {hits}"


def test_readme_links_architecture_and_nothing_outside_the_repository():
    readme = _read("README.md")
    assert "(ARCHITECTURE.md)" in readme
    for name in ["README.md", "ARCHITECTURE.md", *glob.glob("projects/*/README.md",
                                                             root_dir=ROOT)]:
        assert not re.search(r"(?<![.\w])\.\./", _read(name)), f"{name} points outside the repo"
