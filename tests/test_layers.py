"""The import rules of ARCHITECTURE.md, enforced.

* the contracts in pyproject.toml ([tool.importlinter], checked by ``lint-imports``): no
  module imports from a layer above its own, no package's modules import each other in a
  cycle, and the training loop imports no inference front end (function-level imports count);
* no module uses a private name (``_x``) of another rnnlab module;
* every import inside a function says why it is there (``# lazy: <reason>``).
"""
from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "rnnlab"
LAZY_MARK = "# lazy:"


def lint_imports(project: Path) -> subprocess.CompletedProcess:
    """``lint-imports`` on ``project`` (a folder holding pyproject.toml and src/rnnlab)."""
    script = Path(sys.executable).with_name("lint-imports")
    if not script.exists():
        pytest.fail("lint-imports is missing: install the test extra (pip install -e '.[test]')")
    env = {**os.environ, "PYTHONPATH": str(project / "src")}
    return subprocess.run([str(script), "--no-cache", "--no-logo"], cwd=project, env=env, capture_output=True,
                          text=True, timeout=600)


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def sources() -> list[tuple[str, Path, str]]:
    return [(module_name(p), p, p.read_text(encoding="utf-8")) for p in sorted(PACKAGE.rglob("*.py"))]


def absolute(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    """The absolute module name of ``from <node.module> import ...`` written in ``module``."""
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[:len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def private_uses(module: str, source: str, is_package: bool = False, modules: set[str] = frozenset()) -> list[str]:
    """Where ``source`` (the code of ``module``) uses a private name of another rnnlab module:
    ``from rnnlab.x import _y`` or ``x._y`` with ``x`` bound to an rnnlab module. ``modules``:
    the names of rnnlab's modules (to tell a submodule from a name in ``from pkg import name``)."""
    found = []
    bound: dict[str, str] = {}  # local name -> the rnnlab module it is bound to
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "rnnlab":
                    if alias.asname:
                        bound[alias.asname] = alias.name
                    else:
                        bound["rnnlab"] = "rnnlab"
        elif isinstance(node, ast.ImportFrom):
            target = absolute(module, is_package, node)
            if target.split(".")[0] != "rnnlab" or target == module:
                continue
            for alias in node.names:
                if alias.name.startswith("_") and not alias.name.startswith("__"):
                    found.append(f"line {node.lineno}: from {target} import {alias.name}")
                if f"{target}.{alias.name}" in modules:
                    bound[alias.asname or alias.name] = f"{target}.{alias.name}"
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
            chain, value = [], node.value
            while isinstance(value, ast.Attribute):
                chain.append(value.attr)
                value = value.value
            if isinstance(value, ast.Name) and value.id in bound:
                owner = ".".join([bound[value.id], *reversed(chain)])
                if owner in modules and owner != module:
                    found.append(f"line {node.lineno}: {ast.unparse(node)}")
    return found


def unexplained_lazy_imports(source: str) -> list[str]:
    """The imports inside a function of ``source`` without a ``# lazy: <reason>`` comment on
    their first line or on the line above."""
    lines = source.splitlines()
    found = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if in_function and isinstance(child, (ast.Import, ast.ImportFrom)):
                here, above = lines[child.lineno - 1], lines[child.lineno - 2].strip() if child.lineno > 1 else ""
                reason = here.partition(LAZY_MARK)[2] if LAZY_MARK in here else (
                    above.partition(LAZY_MARK)[2] if above.startswith(LAZY_MARK) else "")
                if not reason.strip():
                    found.append(f"line {child.lineno}: {here.strip()}")
            visit(child, in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)))

    visit(ast.parse(source), False)
    return found


def test_the_import_contracts_are_kept():
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 kept, 0 broken" in result.stdout


def test_an_upward_import_or_an_undeclared_module_breaks_the_contracts(tmp_path):
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    shutil.copytree(PACKAGE, tmp_path / "src" / "rnnlab", ignore=shutil.ignore_patterns("__pycache__"))
    vocab = tmp_path / "src" / "rnnlab" / "data" / "vocab.py"
    vocab.write_text(vocab.read_text(encoding="utf-8") + "\n\ndef upward():\n    from rnnlab.training import loop"
                     "  # lazy: a test\n    return loop\n", encoding="utf-8")
    (tmp_path / "src" / "rnnlab" / "newcomer.py").write_text("VALUE = 1\n", encoding="utf-8")
    state = tmp_path / "src" / "rnnlab" / "training" / "state.py"
    state.write_text(state.read_text(encoding="utf-8") + "\n\ndef facade():\n    from rnnlab import lm  # lazy: a test\n"
                     "    return lm\n", encoding="utf-8")
    result = lint_imports(tmp_path)
    assert result.returncode != 0
    assert "rnnlab.data is not allowed to import rnnlab.training" in result.stdout
    assert "rnnlab.data.vocab -> rnnlab.training.loop" in result.stdout
    assert "rnnlab.newcomer" in result.stdout  # every module must have its place in a layer
    assert "It could be made acyclic by removing" in result.stdout  # data -> training -> data
    assert "rnnlab.training is not allowed to import rnnlab.lm" in result.stdout  # downward, but forbidden


def test_no_module_uses_a_private_name_of_another():
    modules = {name for name, _, _ in sources()}
    found = {name: uses for name, path, source in sources()
             if (uses := private_uses(name, source, path.name == "__init__.py", modules))}
    assert not found, found


def test_the_private_name_check_sees_both_spellings():
    modules = {"rnnlab.data", "rnnlab.data.corpus", "rnnlab.cli", "rnnlab.cli.common", "rnnlab.cli.lm"}
    source = ("from rnnlab.data.corpus import _is_glob, load_corpus\nfrom rnnlab.data import corpus\n"
              "import rnnlab.data.corpus as c\nfrom .common import _fmt\n"
              "corpus._glob_root('x'); c._resolve('y'); load_corpus._cache\n")
    assert private_uses("rnnlab.cli.lm", source, modules=modules) == [
        "line 1: from rnnlab.data.corpus import _is_glob", "line 4: from rnnlab.cli.common import _fmt",
        "line 5: corpus._glob_root", "line 5: c._resolve"]
    assert private_uses("rnnlab.data.corpus", "from rnnlab.data.corpus import _is_glob\n", modules=modules) == []


def test_every_function_level_import_says_why():
    found = {name: lazy for name, _, source in sources() if (lazy := unexplained_lazy_imports(source))}
    assert not found, found


def test_the_lazy_import_check_wants_a_reason():
    source = ("import os\n\n\ndef f():\n    import json\n    import csv  # lazy: start-up\n"
              "    # lazy: an optional dependency (the export extra)\n    import onnx\n"
              "    import re  # lazy:\n    return os, json, csv, onnx, re\n")
    assert unexplained_lazy_imports(source) == ["line 5: import json", "line 9: import re  # lazy:"]
