"""The documentation site (docs/, mkdocs.yml) builds, and what it shows is what rnnlab does.

Three checks, each fast:

* ``mkdocs build --strict`` into a temporary folder: a broken link or anchor, a page
  missing from the nav, or a docstring mkdocstrings cannot render fails the build;
* docs/reference/cli.md equals a fresh run of docs/gen_cli_reference.py (it is generated
  from the argparse parser and cannot drift from the commands);
* every console block marked ```` ```console title="checked" ```` is re-run and its
  stable output lines compared with the page.

Checked blocks. A line starting with ``$ `` is a command, the lines after it (up to the
next command or the end of the block) are its expected output, stdout and stderr
interleaved as a terminal shows them. The checked blocks of one page run in page order
in one fresh temporary folder (a later block may use what an earlier one wrote) that
holds a copy of ``timemachine.txt`` (the page is skipped when the Time Machine is not
found; see tests/conftest.py); the pages write its folder as ``/work/shared/data``, which
the test replaces with the folder it found. A command that is ``rnnlab ...`` (optionally
after ``VAR=value`` settings) with no shell operators runs in this process through
``rnnlab.cli.main`` with one PyTorch thread (conftest.py sets it); any other command
(``printf``, ``mkdir ... && head ...``) runs in bash with the virtual environment's
``bin`` first on ``PATH``.

Stable lines. A line is compared unless it reports time or speed: it contains a rate
(``/s``, as in ``tok/s``, ``tokens/s``, ``MB/s``), a duration (a number followed by ``s``,
``ms`` or ``µs``) or the word ``second`` (``"seconds"``, ``"tokens_per_second"`` in JSON).
Trailing spaces are ignored, and so is the temporary folder's path where a command prints
an absolute path inside it (``/tmp/.../tm holds split files`` reads ``tm holds ...``). A line ``...`` in the expected output stands for any number
of lines. Everything else (commands' results, counts, perplexities of seeded tiny runs,
error messages) must match exactly, in order.
"""
from __future__ import annotations

import contextlib
import difflib
import importlib.util
import io
import logging
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from conftest import REPO, data_dir

DOCS = REPO / "docs"
MARKER = '```console title="checked"'
DOC_DATA = "/work/shared/data"  # how the pages write the folder holding timemachine.txt
UNSTABLE = re.compile(r"/s\b|\b\d+(?:\.\d+)?\s?(?:s|ms|µs)\b|second")
SHELL_OPERATORS = re.compile(r"[|&;<>()$`*?]")
ENV_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


@dataclass
class Command:
    line: int
    text: str
    expected: list[str] = field(default_factory=list)


@dataclass
class Block:
    page: str
    line: int
    commands: list[Command]

    @property
    def id(self) -> str:
        return f"{self.page}:{self.line}"


def checked_blocks(root: Path = DOCS) -> list[Block]:
    """Every ```console title="checked"``` block of the Markdown pages under ``root``."""
    blocks = []
    for path in sorted(root.rglob("*.md")):
        lines = path.read_text(encoding="utf-8").splitlines()
        i = 0
        while i < len(lines):
            if lines[i].strip() != MARKER:
                i += 1
                continue
            start, commands = i + 1, []
            i += 1
            while i < len(lines) and lines[i].strip() != "```":
                if lines[i].startswith("$ "):
                    commands.append(Command(i + 1, lines[i][2:]))
                elif commands:
                    commands[-1].expected.append(lines[i])
                i += 1
            blocks.append(Block(path.relative_to(root).as_posix(), start, commands))
            i += 1
    return blocks


def stable(lines: list[str]) -> list[str]:
    return [line.rstrip() for line in lines if not UNSTABLE.search(line)]


def matches(expected: list[str], actual: list[str]) -> bool:
    """``expected`` equals ``actual``, each ``...`` line in it standing for any lines."""
    if not expected:
        return not actual
    if expected[0] == "...":
        return any(matches(expected[1:], actual[k:]) for k in range(len(actual) + 1))
    return bool(actual) and expected[0] == actual[0] and matches(expected[1:], actual[1:])


def run_in_process(argv: list[str], env: dict[str, str], monkeypatch) -> str:
    from rnnlab.cli import main

    for key, value in env.items():
        monkeypatch.setenv(key, value)
    logger = logging.getLogger("rnnlab")
    buffer = io.StringIO()
    for handler in list(logger.handlers):  # the CLI binds its handler to the sys.stderr of its first call
        logger.removeHandler(handler)
    try:
        with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(buffer):
            try:
                main(argv)
            except SystemExit:  # argparse's own errors (an unknown or renamed option) and --help
                pass
    finally:
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
    return buffer.getvalue()


def run_in_shell(command: str, cwd: Path) -> str:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    done = subprocess.run(["bash", "-c", command], cwd=cwd, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=60)
    return done.stdout


def run(command: str, cwd: Path, monkeypatch) -> str:
    words = shlex.split(command) if not SHELL_OPERATORS.search(command.replace("'", "").replace('"', "")) else None
    if words:
        env = {}
        while words and ENV_ASSIGNMENT.match(words[0]):
            key, value = words.pop(0).split("=", 1)
            env[key] = value
        if words and words[0] == "rnnlab":
            return run_in_process(words[1:], env, monkeypatch)
    return run_in_shell(command, cwd)


BLOCKS = checked_blocks()


def test_the_pages_have_checked_examples():
    assert len(BLOCKS) >= 8, [b.id for b in BLOCKS]
    for block in BLOCKS:
        assert block.commands, f"{block.id}: a checked block without a '$ ' command"


PAGES = sorted({b.page for b in BLOCKS})


@pytest.mark.parametrize("page", PAGES)
def test_checked_examples(page, tmp_path, monkeypatch):
    blocks = [b for b in BLOCKS if b.page == page]
    commands = [c for b in blocks for c in b.commands]
    folder = data_dir()
    text = "\n".join(c.text + "\n" + "\n".join(c.expected) for c in commands)
    if "timemachine" in text:
        if folder is None:
            pytest.skip("timemachine.txt not found: set RNNLAB_DATA to the folder holding it")
        shutil.copy(folder / "timemachine.txt", tmp_path / "timemachine.txt")
    if folder is not None:
        monkeypatch.setenv("RNNLAB_DATA", str(folder))
    monkeypatch.chdir(tmp_path)
    for command in commands:
        local = lambda s: s.replace(DOC_DATA, str(folder)) if folder is not None else s  # noqa: E731
        output = run(local(command.text), tmp_path, monkeypatch)
        expected = stable([local(line) for line in command.expected])
        actual = stable(output.replace(f"{tmp_path}{os.sep}", "").splitlines())
        if not matches(expected, actual):
            diff = "\n".join(difflib.unified_diff(expected, actual, "docs", "run", lineterm=""))
            pytest.fail(f"docs/{page}:{command.line}: `$ {command.text}` printed other stable lines "
                        f"than the page shows:\n{diff}\n--- full output ---\n{output}", pytrace=False)


def test_cli_reference_is_generated_from_the_parser():
    spec = importlib.util.spec_from_file_location("gen_cli_reference", DOCS / "gen_cli_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    committed = (DOCS / "reference" / "cli.md").read_text(encoding="utf-8")
    assert committed == module.generate(), \
        "docs/reference/cli.md is out of date: run .venv/bin/python docs/gen_cli_reference.py"


def test_mkdocs_build_strict(tmp_path):
    assert importlib.util.find_spec("mkdocs") is not None, \
        "mkdocs is missing: the docs tools come with the test extra (bash bootstrap.sh setup)"
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file",
                           str(REPO / "mkdocs.yml"), "--site-dir", str(tmp_path / "site")],
                          cwd=REPO, capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, NO_MKDOCS_2_WARNING="1"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "site" / "reference" / "cli" / "index.html").is_file()


def test_readme_is_a_front_page_whose_links_resolve():
    text = (REPO / "README.md").read_text(encoding="utf-8")
    assert "bash bootstrap.sh test" in text and "bash bootstrap.sh setup" in text and "bash bootstrap.sh demo" in text
    assert text.count("<!-- demo-output -->") == 1 and text.count("<!-- /demo-output -->") == 1
    assert len(text.splitlines()) <= 220
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
        if "://" not in target:
            assert (REPO / target).exists(), f"README.md links to {target}, which does not exist"
