"""Print the pinned requirements of the Home Assistant components our tests load.

Used by ``script/newest.sh ensure``. Home Assistant installs a component's
requirements at run time, but not under pytest-homeassistant-custom-component
(pip is skipped there), so every package that a component set up by the tests
needs must be installed beforehand. Older Home Assistant releases pulled many of
them in as core dependencies (hassil, PyTurboJPEG...); newer ones do not.

The components are found the way Home Assistant would load them:

* this integration's manifest ``dependencies`` and ``after_dependencies``;
* every ``async_setup_component(hass, "<domain>", ...)`` in ``tests/``;
* for ``demo``, the entity platforms its config entry forwards to;

then followed through each manifest's ``dependencies``. Manifests are read from
a Home Assistant wheel (``--wheel``) or an installed package (``--components``),
so the result matches the exact release under test.

    python script/component_requirements.py --components .../site-packages/homeassistant/components
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
import json
from pathlib import Path
import re
import sys
from typing import Any
import zipfile

ROOT = Path(__file__).resolve().parent.parent
MANIFEST = ROOT / "custom_components" / "acestream_proxy" / "manifest.json"
TESTS = ROOT / "tests"

SETUP_CALL = re.compile(r"async_setup_component\(\s*hass\s*,\s*\"([a-z0-9_]+)\"")
DEMO_PLATFORM = re.compile(r"Platform\.([A-Z0-9_]+)")


def roots() -> set[str]:
    """Return the component domains the integration and the tests set up."""
    manifest = json.loads(MANIFEST.read_text())
    found = set(manifest.get("dependencies", []))
    found |= set(manifest.get("after_dependencies", []))
    for path in sorted(TESTS.rglob("*.py")):
        found |= set(SETUP_CALL.findall(path.read_text(errors="replace")))
    return found


def collect(read: Callable[[str], str | None], start: set[str]) -> set[str]:
    """Walk manifests from start; return the union of their requirements."""
    requirements: set[str] = set()
    todo = sorted(start)
    seen: set[str] = set()
    while todo:
        domain = todo.pop()
        if domain in seen:
            continue
        seen.add(domain)
        text = read(f"{domain}/manifest.json")
        if text is None:
            print(f"warning: no manifest for {domain!r}", file=sys.stderr)
            continue
        manifest: dict[str, Any] = json.loads(text)
        requirements |= set(manifest.get("requirements", []))
        todo.extend(manifest.get("dependencies", []))
        if domain == "demo":
            source = read("demo/__init__.py") or ""
            todo.extend(name.lower() for name in DEMO_PLATFORM.findall(source))
    return requirements


def main() -> None:
    """Print one requirement per line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--wheel", type=Path, help="a homeassistant wheel file")
    group.add_argument(
        "--components", type=Path, help="an installed homeassistant/components"
    )
    args = parser.parse_args()

    if args.wheel is not None:
        archive = zipfile.ZipFile(args.wheel)
        names = set(archive.namelist())

        def read(name: str) -> str | None:
            member = f"homeassistant/components/{name}"
            if member not in names:
                return None
            return archive.read(member).decode()

    else:
        base: Path = args.components

        def read(name: str) -> str | None:
            path = base / name
            return path.read_text() if path.is_file() else None

    for requirement in sorted(collect(read, roots()), key=str.lower):
        print(requirement)


if __name__ == "__main__":
    main()
