"""Fail a test when it makes Home Assistant report our integration's API use.

Home Assistant announces the removal of an API to a custom integration by
logging "Detected that custom integration 'acestream_proxy' ..." (its
``frame.report_usage``) for releases before the one it stops working in; Python
libraries do so with a DeprecationWarning attributed to the caller. Both are
easy to miss in a passing run, and the removal then breaks users on a release we
never saw. ``conftest.deprecation_guard`` applies a ``DeprecationGuard`` to every
test, on every leg.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
import logging
from pathlib import Path
from typing import Any
import warnings

import pytest

from custom_components.acestream_proxy.const import DOMAIN

REPORT = f"Detected that custom integration '{DOMAIN}'"
# Warnings are attributed to the frame that called the deprecated API (its
# stacklevel), so this is the source path of any module of ours.
PACKAGE_DIR = str(Path(__file__).resolve().parent.parent / "custom_components" / DOMAIN)


def problem_of_record(record: logging.LogRecord) -> str | None:
    """What is wrong with a log record, if it is a usage report about us."""
    message = record.getMessage()
    if REPORT not in message:
        return None
    return f"{record.name}: {message}"


def problem_of_warning(
    message: Warning | str, category: type[Warning], filename: str, lineno: int
) -> str | None:
    """What is wrong with a warning, if it is a deprecation raised from our code."""
    if not issubclass(category, DeprecationWarning):
        return None
    if not str(Path(filename).resolve()).startswith(PACKAGE_DIR + "/"):
        return None
    return f"{filename}:{lineno}: {category.__name__}: {message}"


class _ReportHandler(logging.Handler):
    def __init__(self, problems: list[str]) -> None:
        super().__init__(logging.NOTSET)
        self._problems = problems

    def emit(self, record: logging.LogRecord) -> None:
        if (problem := problem_of_record(record)) is not None:
            self._problems.append(problem)


class DeprecationGuard:
    """Collects deprecation reports about our code while it is watching."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    @contextmanager
    def watching(self) -> Iterator[None]:
        """Collect from every logger (reports propagate to the root) and warning.

        Warnings are taken where pytest's own recorder would show them, so the
        filters in force (pytest's and the project's) still decide what is shown.
        Ours are kept out of pytest's summary: they fail the test instead.
        """
        handler = _ReportHandler(self.problems)
        root = logging.getLogger()
        root.addHandler(handler)
        shown_by = warnings.showwarning

        def showwarning(
            message: Warning | str,
            category: type[Warning],
            filename: str,
            lineno: int,
            file: Any = None,
            line: str | None = None,
        ) -> None:
            problem = problem_of_warning(message, category, filename, lineno)
            if problem is not None:
                self.problems.append(problem)
                return
            shown_by(message, category, filename, lineno, file, line)

        warnings.showwarning = showwarning
        try:
            yield
        finally:
            warnings.showwarning = shown_by
            root.removeHandler(handler)

    def check(self) -> None:
        """Fail the current test when anything was collected."""
        if self.problems:
            pytest.fail(
                "deprecated API used by our integration (fix the call, do not "
                "silence the report):\n  " + "\n  ".join(self.problems),
                pytrace=False,
            )
