"""The broadcast life cycle's state table, read from its docstring, as a judge.

``transitions`` parses the table of ``stream/broadcast/lifecycle.py``;
``code_targets`` reads which phases the code moves to (every ``_to(...)`` call);
``TransitionRecorder`` watches the phase changes a test makes. The conftest
records every test's changes, and a change the table does not list fails it.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterable
import re

from custom_components.acestream_proxy.stream.broadcast import OPEN_PHASES, Phase
from custom_components.acestream_proxy.stream.broadcast.lifecycle import LifeCycle

type Transition = tuple[Phase, Phase]


def transitions(doc: str) -> set[Transition]:
    """(from, to) of every row of the table in ``doc`` that changes the phase.

    "open" stands for each open phase; a ``*`` on the next phase keeps a broadcast
    that never played in STARTING (no change, so no transition).
    """
    lines = doc.splitlines()
    rules = [i for i, line in enumerate(lines) if re.fullmatch(r"=+( +=+)+", line)]
    if len(rules) != 3:
        msg = f"no state table (3 rule lines) in the docstring: {len(rules)} found"
        raise ValueError(msg)
    spans = [m.span() for m in re.finditer(r"=+", lines[rules[0]])]
    header = [lines[rules[0] + 1][a:b].strip() for a, b in spans]
    if header[0] != "Phase" or header[2] != "Next":
        msg = f"unexpected table header: {header}"
        raise ValueError(msg)
    found: set[Transition] = set()
    for line in lines[rules[1] + 1 : rules[2]]:
        first, _, nxt = (line[a:b].strip() for a, b in spans[:3])
        if not first:
            continue  # the event's text goes on from the row above
        sources = OPEN_PHASES if first == "open" else {Phase[first]}
        target = Phase[nxt.removesuffix("*")]
        for source in sources:
            if nxt.endswith("*") and source is Phase.STARTING:
                continue
            if source is not target:
                found.add((source, target))
    return found


def code_targets(source: str) -> set[Phase]:
    """The phases the code in ``source`` moves to through ``_to``."""
    found: set[Phase] = set()
    for node in ast.walk(ast.parse(source)):
        if not (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "_to"
        ):
            continue
        (arg,) = node.args
        branches = [arg.body, arg.orelse] if isinstance(arg, ast.IfExp) else [arg]
        for branch in branches:
            if not (
                isinstance(branch, ast.Attribute)
                and isinstance(branch.value, ast.Name)
                and branch.value.id == "Phase"
            ):
                msg = f"line {node.lineno}: _to() with a phase no table can check"
                raise ValueError(msg)
            found.add(Phase[branch.attr])
    return found


def off_table(made: Iterable[Transition], table: set[Transition]) -> list[str]:
    """The changes in ``made`` the table does not list, as readable lines."""
    return sorted({f"{a.name} -> {b.name}" for a, b in made if (a, b) not in table})


class TransitionRecorder:
    """Records every phase change made through ``LifeCycle._to`` while installed."""

    def __init__(self) -> None:
        """Nothing recorded yet."""
        self.made: list[Transition] = []
        self._original: Callable[[LifeCycle, Phase], None] | None = None

    def install(self) -> None:
        """Wrap ``LifeCycle._to`` (undone by :meth:`remove`)."""
        original = self._original = LifeCycle._to
        made = self.made

        def recording(lifecycle: LifeCycle, phase: Phase) -> None:
            before = lifecycle.phase
            original(lifecycle, phase)
            if lifecycle.phase is not before:
                made.append((before, lifecycle.phase))

        LifeCycle._to = recording

    def remove(self) -> None:
        """Put ``LifeCycle._to`` back."""
        if self._original is not None:
            LifeCycle._to = self._original
            self._original = None
