"""A one-minute recording across an upstream cut and a failover, end to end."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from homeassistant.const import CONF_HOST, CONF_PORT
from homeassistant.core import HomeAssistant
from homeassistant.setup import async_setup_component
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_capture_events,
)
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.acestream_proxy.const import DOMAIN, EVENT_TYPE
from custom_components.acestream_proxy.hub import get_hub
from tests.helpers import read_bytes, run
from tests.simulator import EngineSimulator

CID = "0123456789abcdef0123456789abcdef01234567"


@pytest.mark.timeout(180)
async def test_a_minute_across_a_cut_and_a_failover(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    engine_sim: EngineSimulator,
    hass_client: ClientSessionGenerator,
    tmp_path: Path,
) -> None:
    """Recorded through the REST API while a viewer watches; the engine cuts the
    stream, then dies and the broadcast moves to the other engine: one file,
    60 s long by ffprobe, decoding without an error, remuxed to an MP4 that
    plays."""
    hass.config.media_dirs = {"local": str(tmp_path)}
    assert await async_setup_component(hass, "api", {})
    assert await async_setup_component(hass, "ffmpeg", {})
    async with EngineSimulator(cold_start=0.3, strict=True) as other:
        second = MockConfigEntry(
            domain=DOMAIN,
            title="second engine",
            data={CONF_HOST: "127.0.0.1", CONF_PORT: other.port},
        )
        second.add_to_hass(hass)
        assert await hass.config_entries.async_setup(second.entry_id)
        await hass.async_block_till_done()
        sims = {loaded_entry.entry_id: engine_sim, second.entry_id: other}
        events = async_capture_events(hass, EVENT_TYPE)
        client = await hass_client()
        async with client.get(f"/api/acestream_proxy/stream/{CID}") as viewer:
            await read_bytes(viewer, 100_000)
            resp = await client.post(
                f"/api/services/{DOMAIN}/record?return_response",
                json={"content_id": CID, "duration": "00:01:00", "name": "match"},
            )
            assert resp.status == 200, await resp.text()
            answer = (await resp.json())["service_response"]
            [item] = get_hub(hass).broadcasts.values()
            serving = sims[item.entry_id]
            serving.schedule("cut at 15s")

            async def watch(seconds: float) -> None:
                # The viewer keeps reading (its socket must not fill up).
                loop = asyncio.get_running_loop()
                end = loop.time() + seconds
                while loop.time() < end:
                    async with asyncio.timeout(10):
                        assert await viewer.content.readany()

            await watch(30)
            await serving.stop()  # the broadcast fails over to the other engine
            async with asyncio.timeout(90):
                while not any(e.data["type"] == "recording_finished" for e in events):
                    await watch(1)
        types = [e.data["type"] for e in events]
        assert "stream_failover" in types
        assert "stream_recovered" in types
        assert item.broadcaster.stats.viewers_dropped == 0
        [done] = [e.data for e in events if e.data["type"] == "recording_finished"]
        assert done["recording_id"] == answer["recording_id"]
        assert done["reason"] == "duration reached"
        mp4 = Path(done["path"])
        assert mp4 == tmp_path / "acestream" / "match.mp4"
        assert not mp4.with_suffix(".ts").exists()
        code, out, err = await run(
            "ffprobe", "-v", "error", "-show_entries", "format=duration",
            "-of", "json", str(mp4),
        )  # fmt: skip
        assert code == 0, err
        duration = float(json.loads(out)["format"]["duration"])
        assert abs(duration - 60.0) <= 1.0, duration
        code, _, errors = await run(
            "ffmpeg", "-v", "error", "-i", str(mp4), "-f", "null", "-", timeout=120
        )
        assert code == 0
        assert not errors
        assert await hass.config_entries.async_unload(second.entry_id)
