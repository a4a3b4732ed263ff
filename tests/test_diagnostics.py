"""Diagnostics: values redacted inside any text; only this engine's data."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from types import MappingProxyType

from aiohttp.test_utils import TestClient
from homeassistant.config_entries import ConfigSubentry
from homeassistant.core import HomeAssistant
from homeassistant.setup import async_setup_component
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.components.diagnostics import (
    get_diagnostics_for_config_entry,
)

from custom_components.acestream_proxy.channel import Channel
from custom_components.acestream_proxy.const import DOMAIN
from custom_components.acestream_proxy.diagnostics import redact_text
from custom_components.acestream_proxy.hub import get_hub
from custom_components.acestream_proxy.stream.engine import ContentKind, ContentRef

IH = "2c4848271c91ce2d8965ce416267c25047dc8143"
IH_OTHER = "3d4848271c91ce2d8965ce416267c25047dc8144"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "cannot connect to the engine at http://192.168.1.5:6878: refused",
            "cannot connect to the engine at **REDACTED** refused",
        ),
        (
            "engine at nas.local:6878 did not answer",
            "engine at **REDACTED** did not answer",
        ),
        (
            "peer 10.0.0.1 and fe80::1 or [::1]:6878",
            "peer **REDACTED** and **REDACTED** or **REDACTED**",
        ),
        ("rtmp://cdn.example/live?token=abc", "**REDACTED**"),
        ("host nas.local is down", "host **REDACTED** is down"),
        ("localhost:6878 refused", "**REDACTED** refused"),
        # Not addresses: times, versions, ids, timestamps are kept.
        ("at 12:30:45 version 3.2.12", "at 12:30:45 version 3.2.12"),
        (f"{IH} 2026-12-01T09:00:00+00:00", f"{IH} 2026-12-01T09:00:00+00:00"),
    ],
)
def test_redact_text(text: str, expected: str) -> None:
    """URLs of any scheme, host:port, IPs and known host names inside text."""
    assert redact_text(text, {"nas.local"}) == expected


async def test_diagnostics_redact_values_and_keep_to_their_engine(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    hass_client: Callable[[], Awaitable[TestClient]],
) -> None:
    """Failure texts lose their addresses; other engines' failures stay out."""
    assert await async_setup_component(hass, "diagnostics", {})
    other = MockConfigEntry(domain=DOMAIN, data={"host": "10.9.8.7", "port": 6878})
    other.add_to_hass(hass)
    for entry, infohash in ((loaded_entry, IH), (other, IH_OTHER)):
        channel = Channel(
            f"Channel {infohash[:2]}", ContentRef(ContentKind.INFOHASH, infohash)
        )
        hass.config_entries.async_add_subentry(
            entry,
            ConfigSubentry(
                data=MappingProxyType(channel.as_data()),
                subentry_type="channel",
                title=channel.name,
                unique_id=channel.unique_id,
            ),
        )
    hub = get_hub(hass)
    hub.failures[IH] = (
        "cannot connect to the engine at http://127.0.0.1:6878: "
        "[Errno 111] Connect call failed ('127.0.0.1', 6878)"
    )
    hub.failures[IH_OTHER] = "engine at http://10.9.8.7:6878 did not answer in time"
    diagnostics = await get_diagnostics_for_config_entry(
        hass, hass_client, loaded_entry
    )
    text = str(diagnostics)
    assert "127.0.0.1" not in text
    assert "10.9.8.7" not in text
    assert list(diagnostics["failures"]) == [IH]
    assert diagnostics["failures"][IH].startswith("cannot connect to the engine at")
    assert [c["content"] for c in diagnostics["entry"]["channels"]] == [IH]
