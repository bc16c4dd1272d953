"""The documentation read against the tree, so a move or a rename cannot leave it behind.

Every repository path README.md, a package's README.md and docs/*.md name (in backticks, as a link, as
`file.py:NN`) must exist; every dotted name of a module of this project
(`dashboard.live.publish_metric`) must be one; every link to a heading must find
it. docs/architecture.md's tables of channel-layer events, WebSocket commands and
management commands must list exactly what the code defines: the definitions are
read from the code (imported, or the command files found), never copied here.
"""

import ast
import os
import re
from fnmatch import fnmatch
from functools import cache
from pathlib import Path, PurePosixPath

import pytest

from conftest import ROOT

DOCS = [ROOT / "README.md", *sorted(ROOT.glob("*/README.md")), *sorted((ROOT / "docs").glob("*.md"))]
ARCHITECTURE = ROOT / "docs" / "architecture.md"

# Folders that are not the product's source: tools, dependencies, build output.
NOT_SOURCE = {".git", ".venv", "node_modules", "staticfiles", "__pycache__", ".pytest_cache", ".ruff_cache"}
# What a file name ends with when a backticked word is meant as a file of the tree.
FILE_SUFFIXES = {
    "py", "md", "js", "css", "json", "conf", "yml", "yaml", "toml", "sh", "po", "mo",
    "html", "txt", "png", "cfg", "ini", "example",
}  # fmt: skip
PATH_WORD = re.compile(r"^[\w.\-/]+$")
LINE_REFERENCE = re.compile(r"([\w.\-/]+\.(?:" + "|".join(FILE_SUFFIXES) + r")):(\d+)(?:-(\d+))?\b")
DOTTED_NAME = re.compile(r"^([a-z_]\w*(?:\.[A-Za-z_]\w*)+)(?:\(.*\))?$")
# `dashboard.view_metric` is a permission (app label, codename), not a module.
PERMISSION = re.compile(r"^\w+\.(?:add|change|delete|view)_\w+$")
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")


@cache
def tree():
    """Every file and folder of the tree, as posix paths relative to the root."""
    paths = set()
    for folder, folders, files in os.walk(ROOT):
        folders[:] = [name for name in folders if name not in NOT_SOURCE]
        relative = PurePosixPath(Path(folder).relative_to(ROOT).as_posix())
        for name in folders + files:
            paths.add(str(relative / name) if str(relative) != "." else name)
    return paths


@cache
def ignored_patterns():
    lines = (ROOT / ".gitignore").read_text().splitlines()
    return [line.strip().rstrip("/") for line in lines if line.strip() and not line.startswith("#")]


def is_generated(path):
    """A path .gitignore names (or one inside it): made by `make`, a run or a test, so
    a doc may name it although a clone does not hold it."""
    parts = PurePosixPath(path).parts
    for index in range(len(parts)):
        prefix = "/".join(parts[: index + 1])
        if any(fnmatch(prefix, pattern) or fnmatch(parts[index], pattern) for pattern in ignored_patterns()):
            return True
    return False


def candidates(word, doc):
    """The paths of the tree `word` may mean, read from `doc`: from the root, from the
    doc's folder, or (a path written under its package's heading, `stream/views.py`) the
    end of a longer path."""
    word = word.rstrip("/")
    found = set()
    beside = (doc.parent / word).resolve()
    if beside.is_relative_to(ROOT):
        relative = beside.relative_to(ROOT).as_posix()
        if relative in tree():
            found.add(relative)
    if word in tree():
        found.add(word)
    found.update(path for path in tree() if path.endswith("/" + word))
    return found


def prose_and_code(text):
    """The doc's lines outside fenced code blocks (shell sessions and examples)."""
    inside = False
    for number, line in enumerate(text.splitlines(), start=1):
        if line.lstrip().startswith("```"):
            inside = not inside
            continue
        if not inside:
            yield number, line


def backticked(line):
    return re.findall(r"`([^`\n]+)`", line)


def is_path_word(word):
    """A backticked word written as a file or folder of this tree."""
    if not PATH_WORD.match(word) or word.startswith(("/", ".venv/", "~")) or "://" in word:
        return False
    name = PurePosixPath(word.rstrip("/")).name
    suffix = name.rsplit(".", 1)[-1] if "." in name.lstrip(".") else ""
    if suffix in FILE_SUFFIXES:
        return True
    # Without a file suffix (a folder, `.ci/run`), only from a top-level entry: this
    # keeps `application/json` and `KiB/s` out.
    return "/" in word and word.split("/", 1)[0] in tree()


def heading_slugs(path):
    """The anchors GitHub gives the headings of a markdown file."""
    slugs, seen = set(), {}
    for _, line in prose_and_code(path.read_text()):
        match = HEADING.match(line)
        if not match:
            continue
        text = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", r"\1", match.group(2)).strip().lower()
        slug = re.sub(r"[^\w\- ]", "", text).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        slugs.add(slug if count == 0 else f"{slug}-{count}")
    return slugs


def module_source(segments):
    """The source a dotted name's module part resolves to, and the names after it.
    None when the module part names nothing."""
    path, index = ROOT, 0
    while index < len(segments):
        if (path / segments[index]).is_dir():
            path = path / segments[index]
            index += 1
        elif (path / f"{segments[index]}.py").is_file():
            return (path / f"{segments[index]}.py").read_text(), segments[index + 1 :]
        else:
            break
    init = path / "__init__.py"
    if index == len(segments) or index == len(segments) - 1:
        # A package and one more word (`dashboard.create`, an audit action; a
        # permission) is a name of its own, not a reference into the package.
        return "", []
    return (init.read_text() if init.is_file() else None), segments[index:]


@cache
def top_level_packages():
    return {path for path in tree() if "/" not in path and (ROOT / path / "__init__.py").is_file()}


def dotted_name_problem(word):
    match = DOTTED_NAME.match(word)
    if not match or PERMISSION.match(word):
        return None
    segments = match.group(1).split(".")
    if segments[0] not in top_level_packages():
        return None
    source, attributes = module_source(segments)
    if source is None:
        return f"`{word}`: no module {'.'.join(segments[: len(segments) - len(attributes)])}"
    if attributes and attributes[0] not in defined_names(source):
        return f"`{word}`: {attributes[0]} is not defined in its module"
    missing = [name for name in attributes[1:] if not re.search(rf"\b{re.escape(name)}\b", source)]
    if missing:
        return f"`{word}`: {', '.join(missing)} is not in its module"
    return None


def defined_names(source):
    """What a module defines or imports at its top level (a docstring's mention is not
    a definition)."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
    return names


def problems_in(doc):
    text = doc.read_text()
    name = doc.relative_to(ROOT).as_posix()
    problems = []
    for number, line in prose_and_code(text):
        where = f"{name}:{number}"
        for target in LINK.findall(line):
            if re.match(r"^[a-z]+:", target):
                continue
            file_part, _, anchor = target.partition("#")
            linked = (doc.parent / file_part).resolve() if file_part else doc
            if not linked.exists() and not is_generated(linked.relative_to(ROOT).as_posix()):
                problems.append(f"{where}: link to {target}, which does not exist")
            elif anchor and linked.suffix == ".md" and anchor not in heading_slugs(linked):
                problems.append(f"{where}: link to {target}, which has no such heading")
        for path, first, last in LINE_REFERENCE.findall(line):
            lines = int(last or first)
            found = candidates(path, doc)
            if not found:
                problems.append(f"{where}: `{path}:{first}` names a file that does not exist")
            elif not any(len((ROOT / each).read_text().splitlines()) >= lines for each in found):
                problems.append(f"{where}: `{path}` has fewer than {lines} lines")
        for word in backticked(line):
            word = word.split("::")[0]
            word = LINE_REFERENCE.sub(lambda match: match.group(1), word)
            if is_path_word(word):
                if not candidates(word, doc) and not is_generated(word):
                    problems.append(f"{where}: `{word}` does not exist")
            elif problem := dotted_name_problem(word):
                problems.append(f"{where}: {problem}")
    return problems


@pytest.mark.parametrize("doc", DOCS, ids=lambda doc: doc.relative_to(ROOT).as_posix())
def test_every_path_a_doc_names_exists(doc):
    problems = problems_in(doc)
    assert problems == [], "\n".join(problems)


def table_under(heading):
    """The rows (cells, stripped) of the first table after `heading` in the architecture
    doc, up to the next heading."""
    rows, inside = [], False
    for _, line in prose_and_code(ARCHITECTURE.read_text()):
        match = HEADING.match(line)
        if match:
            if inside:
                break
            inside = match.group(2) == heading
            continue
        if inside and line.startswith("|"):
            cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
            if not set("".join(cells)) <= set("-: "):
                rows.append(cells)
    assert rows, f"docs/architecture.md has no table under a heading {heading!r}"
    return rows[1:]


def first_code(cell):
    found = backticked(cell)
    return found[0] if found else None


def test_the_architecture_event_table_is_the_events_the_code_defines():
    from dashboard.control.events import EVENTS, handler_name

    documented = {first_code(row[0]): first_code(row[1]) for row in table_under("Channel-layer events")}
    defined = {event_type: handler_name(event_type) for event_type in EVENTS}
    assert documented == defined


def test_the_architecture_command_table_is_the_websocket_commands_the_code_defines():
    from dashboard.control.protocol import COMMANDS

    rows = table_under("WebSocket commands")
    documented = {first_code(row[0]): (first_code(row[1]), first_code(row[2])) for row in rows}
    defined = {name: (spec.permission, spec.handler) for name, spec in COMMANDS.items()}
    assert documented == defined


def management_commands():
    """Every management command of the project's apps: name -> its file."""
    found = {}
    for path in sorted(ROOT.glob("*/management/commands/*.py")):
        if not path.name.startswith("_"):
            found[path.stem] = path.relative_to(ROOT).as_posix()
    return found


def test_the_architecture_management_command_table_is_the_commands_the_tree_holds():
    documented = {first_code(row[0]): first_code(row[1]) for row in table_under("Management commands")}
    assert documented == management_commands()


def test_every_management_command_file_defines_a_command():
    """What `management_commands` finds is a command, not a helper module beside them."""
    for path in management_commands().values():
        tree_of_module = ast.parse((ROOT / path).read_text())
        classes = [node.name for node in tree_of_module.body if isinstance(node, ast.ClassDef)]
        assert "Command" in classes, f"{path} has no Command class"


def test_every_doc_the_code_points_to_exists():
    """Comments and docstrings send readers to docs/*.md; a page renamed or merged must
    take those pointers along."""
    suffixes = {".py", ".js", ".html", ".yml", ".sh", ".conf", ".toml"}
    problems = []
    for path in sorted(tree()):
        source = ROOT / path
        if source.suffix not in suffixes or not source.is_file() or path.startswith("bench/results/"):
            continue
        for number, line in enumerate(source.read_text(errors="replace").splitlines(), start=1):
            for doc in re.findall(r"\bdocs/[\w\-]+\.md\b", line):
                if not (ROOT / doc).is_file():
                    problems.append(f"{path}:{number}: {doc} does not exist")
    assert problems == [], "\n".join(problems)
