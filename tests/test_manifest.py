"""Packaging rules that hassfest and the HACS action enforce, checked locally."""

from __future__ import annotations

import json
from pathlib import Path
import struct

ROOT = Path(__file__).parent.parent
INTEGRATION = ROOT / "custom_components" / "acestream_proxy"

HACS_KEYS = {
    "name",
    "content_in_root",
    "country",
    "filename",
    "hacs",
    "hide_default_branch",
    "homeassistant",
    "persistent_directory",
    "render_readme",
    "zip_release",
}


def test_manifest() -> None:
    """Required keys, hassfest's key order, no runtime requirements."""
    manifest = json.loads((INTEGRATION / "manifest.json").read_text())
    keys = list(manifest)
    assert keys[:2] == ["domain", "name"]
    assert keys[2:] == sorted(keys[2:])
    assert manifest["domain"] == "acestream_proxy"
    assert manifest["config_flow"] is True
    assert manifest["iot_class"] == "local_polling"
    assert manifest["integration_type"] == "hub"
    assert manifest["requirements"] == []
    assert "http" in manifest["dependencies"]
    for key in ("documentation", "issue_tracker", "codeowners", "version"):
        assert manifest[key]
    assert all(owner.startswith("@") for owner in manifest["codeowners"])


def test_hacs_json() -> None:
    """Only keys HACS accepts."""
    hacs = json.loads((ROOT / "hacs.json").read_text())
    assert set(hacs) <= HACS_KEYS
    assert hacs["name"] == "AceStream Proxy"
    assert hacs["homeassistant"] == "2025.4.0"


def test_brand_icons() -> None:
    """icon.png 256x256 and icon@2x.png 512x512 (PNG header)."""
    for name, size in (("icon.png", 256), ("icon@2x.png", 512)):
        data = (INTEGRATION / "brand" / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        width, height = struct.unpack(">II", data[16:24])
        assert (width, height) == (size, size)


def test_every_entity_has_an_icon() -> None:
    """Every translated entity has its icon in icons.json (the completeness of
    the translations themselves is tests/test_translations.py's job)."""
    strings = json.loads((INTEGRATION / "translations" / "en.json").read_text())
    icons = json.loads((INTEGRATION / "icons.json").read_text())
    for platform, entities in strings["entity"].items():
        for key, entity in entities.items():
            assert entity["name"]
            assert key in icons["entity"][platform]


def test_platforms_take_the_config_entry_callback() -> None:
    """Every platform's async_setup_entry is typed with AddConfigEntryEntitiesCallback
    (AddEntitiesCallback cannot attach entities to a channel subentry)."""
    import ast

    from custom_components.acestream_proxy import PLATFORMS

    platforms = 0
    for path in INTEGRATION.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.AsyncFunctionDef)
                and node.name == "async_setup_entry"
                and len(node.args.args) == 3
            ):
                platforms += 1
                annotation = node.args.args[2].annotation
                assert annotation is not None, path.name
                assert ast.unparse(annotation) == "AddConfigEntryEntitiesCallback", (
                    path.name
                )
    assert platforms == len(PLATFORMS)
