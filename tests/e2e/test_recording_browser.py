"""Headless Chromium plays a recording's MP4 from Home Assistant's media."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from homeassistant.components import media_source
from homeassistant.core import HomeAssistant
from homeassistant.setup import async_setup_component
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_capture_events,
)
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.acestream_proxy.const import DOMAIN, EVENT_TYPE
from tests.e2e.chromium import CHROMIUM, Chromium, page_server
from tests.e2e.test_browser import FIXTURE_SIZE, _require, _wait_for
from tests.helpers import signed_path

CID = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def media(hass: HomeAssistant, tmp_path: Path) -> Path:
    """The local media folder (set before the entry: media sources read it once)."""
    folder = tmp_path / "media"
    hass.config.media_dirs = {"local": str(folder)}
    return folder


@pytest.mark.timeout(120)
async def test_chromium_plays_a_recording(
    hass: HomeAssistant,
    media: Path,
    loaded_entry: MockConfigEntry,
    hass_client: ClientSessionGenerator,
    hass_access_token: str,
    tmp_path: Path,
) -> None:
    """Four seconds recorded, remuxed by the ffmpeg integration, resolved by the
    media browser and played by the browser's own <video> to its end."""
    _require(CHROMIUM, "Chromium")
    assert await async_setup_component(hass, "ffmpeg", {})
    events = async_capture_events(hass, EVENT_TYPE)
    await hass.services.async_call(
        DOMAIN, "record", {"content_id": CID, "duration": 4}, blocking=True
    )
    async with asyncio.timeout(30):
        while not any(e.data["type"] == "recording_finished" for e in events):
            await asyncio.sleep(0.1)
    folder = await media_source.async_browse_media(
        hass, f"media-source://{DOMAIN}/recordings"
    )
    [item] = folder.children
    played = await media_source.async_resolve_media(hass, item.media_content_id, None)
    assert played.mime_type == "video/mp4"
    client = await hass_client()
    src = str(client.make_url(signed_path(hass, played.url, hass_access_token)))
    browser = Chromium(tmp_path)
    async with page_server() as page_url:
        try:
            await browser.start(str(page_url.with_query(file=src)))
            state: dict[str, Any] = await _wait_for(
                browser,
                lambda s: s["currentTime"] > 3.0,
                30.0,
                "the recording playing past 3 s",
            )
        finally:
            await browser.close()
    assert (state["videoWidth"], state["videoHeight"]) == FIXTURE_SIZE, state
    assert state["error"] is None, state
    assert not state["errors"], state
