"""The data plane stands apart: its imports, its state table; and no room of the
integration is too big."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from custom_components.acestream_proxy.stream.broadcast import Phase, lifecycle
from tests.conftest import PHASE_TABLE
from tests.lifecycle_table import (
    TransitionRecorder,
    code_targets,
    off_table,
    transitions,
)

PACKAGE = "custom_components.acestream_proxy"
STREAM = Path(__file__).parent.parent / "custom_components/acestream_proxy/stream"
INTEGRATION = STREAM.parent
MAX_MODULE_LINES = 400
MAX_CLASS_LINES = 300


def module_name(path: Path) -> str:
    """Dotted name of a module file of the integration."""
    parts = path.relative_to(STREAM.parent).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join((PACKAGE, *parts))


def forbidden_imports(source: str, module: str, *, package: bool = False) -> list[str]:
    """Imports of ``source`` (module ``module``) that leave the data plane."""
    bad = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                # A package's __init__ is its own base for relative imports.
                base = module.split(".")
                base = base[: len(base) - node.level + (1 if package else 0)]
                names = [".".join([*base, node.module] if node.module else base)]
            else:
                names = [node.module or ""]
        else:
            continue
        for name in names:
            glue = name.startswith(PACKAGE) and not name.startswith(f"{PACKAGE}.stream")
            if name.split(".")[0] == "homeassistant" or glue or name == PACKAGE:
                bad.append(f"{module}:{node.lineno} imports {name}")
    return bad


def data_plane() -> list[Path]:
    return sorted(STREAM.rglob("*.py"))


def broadcast_source() -> str:
    return "\n".join(p.read_text() for p in sorted((STREAM / "broadcast").glob("*.py")))


def test_the_data_plane_imports_neither_home_assistant_nor_the_glue() -> None:
    """Every module below stream/ imports only the standard library, aiohttp and
    other modules below stream/."""
    modules = data_plane()
    assert len(modules) >= 10  # the walk found the package
    bad = [
        line
        for path in modules
        for line in forbidden_imports(
            path.read_text(), module_name(path), package=path.name == "__init__.py"
        )
    ]
    assert not bad


@pytest.mark.parametrize(
    ("source", "package", "why"),
    [
        ("import homeassistant.core", False, "homeassistant.core"),
        ("from homeassistant.core import HomeAssistant", False, "homeassistant.core"),
        ("from ...const import DOMAIN", False, f"{PACKAGE}.const"),
        ("from ... import const", True, PACKAGE),
        ("from ...hub import get_hub", False, f"{PACKAGE}.hub"),
        (f"from {PACKAGE}.views import x", False, f"{PACKAGE}.views"),
    ],
)
def test_the_import_judge_rejects(source: str, package: bool, why: str) -> None:
    """Home Assistant or glue, relative or absolute: each is caught."""
    module = f"{PACKAGE}.stream.broadcast" + ("" if package else ".fanout")
    assert forbidden_imports(source, module, package=package) == [
        f"{module}:1 imports {why}"
    ]


def test_the_import_judge_accepts_the_data_plane() -> None:
    source = "import asyncio\nimport aiohttp\nfrom ..ts import PACKET_SIZE\nfrom . import config\n"
    assert not forbidden_imports(source, f"{PACKAGE}.stream.hls.cutter")
    assert not forbidden_imports(source, f"{PACKAGE}.stream.hls", package=True)


def too_long(source: str, name: str) -> list[str]:
    """What in a module's source is over the limits: the module, or a class."""
    found = []
    if (lines := len(source.splitlines())) > MAX_MODULE_LINES:
        found.append(f"{name}: {lines} lines")
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ClassDef):
            size = (node.end_lineno or node.lineno) - node.lineno + 1
            if size > MAX_CLASS_LINES:
                found.append(f"{name}: class {node.name}, {size} lines")
    return found


def integration() -> dict[str, Path]:
    """Every module of the integration, by its path inside it."""
    return {
        path.relative_to(INTEGRATION).as_posix(): path
        for path in sorted(INTEGRATION.rglob("*.py"))
    }


def test_no_module_or_class_of_the_data_plane_is_too_long() -> None:
    found = [
        line for path in data_plane() for line in too_long(path.read_text(), path.name)
    ]
    assert not found


def test_no_module_or_class_of_the_integration_is_too_long() -> None:
    """The glue as much as the data plane."""
    modules = integration()
    assert {"hub.py", "stream/ts.py"} <= modules.keys()  # the walk found both parts
    found = [
        line
        for name, path in modules.items()
        for line in too_long(path.read_text(), name)
    ]
    assert not found


def test_the_size_judge_rejects() -> None:
    """A module a line over, a class a line over; at the limits, nothing."""
    body = "".join(f"    x{i} = {i}\n" for i in range(MAX_CLASS_LINES - 1))
    at_limit = "class Fits:\n" + body
    assert len(at_limit.splitlines()) == MAX_CLASS_LINES
    assert too_long(at_limit, "m.py") == []
    over = "class Big:\n" + body + "    last = 0\n"
    assert too_long(over, "m.py") == [f"m.py: class Big, {MAX_CLASS_LINES + 1} lines"]
    module = "x = 0\n" * MAX_MODULE_LINES
    assert too_long(module, "m.py") == []
    assert too_long(module + "y = 1\n", "m.py") == [
        f"m.py: {MAX_MODULE_LINES + 1} lines"
    ]


def test_the_code_moves_to_exactly_the_phases_of_the_table() -> None:
    """Every phase the table leads to is reached by a _to() of the code, and the
    code moves to no phase the table never leads to."""
    source = "\n".join(
        p.read_text() for p in sorted((STREAM / "broadcast").glob("*.py"))
    )
    assert code_targets(source) == {target for _, target in PHASE_TABLE}
    # The table as the docstring has it, rows the prose relies on included.
    assert (Phase.BUFFERING, Phase.RECOVERING) in PHASE_TABLE
    assert (Phase.RECOVERING, Phase.PLAYING) in PHASE_TABLE
    assert (Phase.STARTING, Phase.BUFFERING) not in PHASE_TABLE  # the "*"
    assert (Phase.CLOSING, Phase.FAILED) in PHASE_TABLE


def test_the_table_judge_fails_on_a_missing_row() -> None:
    """A table without its RECOVERING -> PLAYING row: the code's move to PLAYING
    from RECOVERING is off the table, and a close that fails has no row."""
    doc = lifecycle.__doc__ or ""
    row = next(line for line in doc.splitlines() if "healthy_after of data" in line)
    table = transitions(doc.replace(row + "\n", ""))
    made = [(Phase.RECOVERING, Phase.PLAYING), (Phase.PLAYING, Phase.BUFFERING)]
    assert off_table(made, table) == ["RECOVERING -> PLAYING"]
    assert off_table(made, PHASE_TABLE) == []
    without_failed = transitions(
        "\n".join(line for line in doc.splitlines() if "FAILED " not in line)
    )
    assert {target for _, target in without_failed} != code_targets(broadcast_source())


def test_the_table_judge_fails_on_a_phase_the_code_invents() -> None:
    assert code_targets("self._to(Phase.STARTING)") == {Phase.STARTING}
    assert Phase.STARTING not in {target for _, target in PHASE_TABLE}
    with pytest.raises(ValueError, match="no table can check"):
        code_targets("self._to(phase)")
    with pytest.raises(ValueError, match="no state table"):
        transitions("no table here")


def test_the_recorder_sees_an_off_table_change(
    phase_changes_follow_the_table: TransitionRecorder,
) -> None:
    """The conftest's recorder catches a change the table does not allow."""
    recorder = TransitionRecorder()
    recorder.install()
    try:
        life = lifecycle.LifeCycle()
        life.name = "test"
        life.phase = Phase.STOPPED
        life._to(Phase.PLAYING)  # never allowed: a stopped broadcast stays stopped
        life._to(Phase.PLAYING)  # no change, nothing recorded
    finally:
        recorder.remove()
    assert recorder.made == [(Phase.STOPPED, Phase.PLAYING)]
    assert off_table(recorder.made, PHASE_TABLE) == ["STOPPED -> PLAYING"]
    # The conftest's own recorder saw it too and would fail this test.
    outer = phase_changes_follow_the_table.made
    assert off_table(outer, PHASE_TABLE) == ["STOPPED -> PLAYING"]
    outer.clear()
