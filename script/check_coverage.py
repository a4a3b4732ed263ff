"""Fail when any module of the integration is below its coverage minimum.

coverage's own fail_under only judges the total, which a well-tested big module
can carry while a small one has no tests. `make test` runs this after pytest on
the JSON report pytest-cov writes:

    python script/check_coverage.py .coverage.json

The minimum of every module is [tool.coverage.report] fail_under of
pyproject.toml; config flows (config_flow.py and every module of flows/) must be
covered entirely (a quality-scale rule).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
import sys
import tomllib

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "custom_components/acestream_proxy/"
# Stricter than the default, by module path below the package; a path ending in
# "/" sets the minimum of every module in that folder.
MINIMUM_OF = {"config_flow.py": 100.0, "flows/": 100.0}


def minimum_of(name: str, default: float) -> float:
    """The minimum of the module at ``name`` (its path below the package)."""
    for path, minimum in MINIMUM_OF.items():
        if name == path or (path.endswith("/") and name.startswith(path)):
            return minimum
    return default


def check(report: dict, default: float) -> list[str]:
    """Lines saying which module is below its minimum (none when all pass)."""
    failures = []
    modules = {
        path.removeprefix(PACKAGE): data["summary"]
        for path, data in report["files"].items()
        if path.startswith(PACKAGE)
    }
    if not modules:
        return [f"no module of {PACKAGE} in the coverage report"]
    for name, summary in sorted(modules.items()):
        minimum = minimum_of(name, default)
        covered = float(summary["percent_covered"])
        if covered < minimum:
            failures.append(
                f"{PACKAGE}{name}: {covered:.2f} % < {minimum:g} % "
                f"({summary['missing_lines']} lines not run)"
            )
    return failures


def main(argv: list[str] | None = None) -> int:
    """Print the modules below their minimum; exit 1 if there are any."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", type=Path, help="coverage JSON report")
    args = parser.parse_args(argv)
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    default = float(config["tool"]["coverage"]["report"]["fail_under"])
    failures = check(json.loads(args.report.read_text()), default)
    for line in failures:
        print(f"coverage too low: {line}", file=sys.stderr)
    if not failures:
        print(f"coverage: every module at {default:g} % or more")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
