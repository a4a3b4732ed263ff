"""Recording actions through Home Assistant: REST API, events, files, the remux."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
import json
from pathlib import Path
from typing import Any

from homeassistant.components import media_source
from homeassistant.config_entries import SOURCE_USER
from homeassistant.const import EVENT_HOMEASSISTANT_STOP
from homeassistant.core import Event, HomeAssistant
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers import entity_registry as er
from homeassistant.setup import async_setup_component
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_capture_events,
)
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.acestream_proxy.const import DOMAIN, EVENT_TYPE
from custom_components.acestream_proxy.device_trigger import async_get_triggers
from custom_components.acestream_proxy.hub import get_hub
from custom_components.acestream_proxy.recordings import get_recordings
from tests.helpers import ffprobe_streams, find_device, read_bytes, run
from tests.simulator import EngineSimulator

CID = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def media(hass: HomeAssistant, tmp_path: Path) -> Path:
    """Home Assistant's local media folder, in the test's own folder (asked for
    before the entry: newer media sources read the folders once, at setup)."""
    folder = tmp_path / "media"
    hass.config.media_dirs = {"local": str(folder)}
    return folder


async def _channel(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    result = await hass.config_entries.subentries.async_init(
        (entry.entry_id, "channel"), context={"source": SOURCE_USER}
    )
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {"name": "Sports 1", "content": CID}
    )
    assert result["type"] == "create_entry"
    await hass.async_block_till_done()


async def _until(hass: HomeAssistant, predicate: Callable[[], bool]) -> None:
    async with asyncio.timeout(20):
        while not predicate():
            await hass.async_block_till_done()
            await asyncio.sleep(0.05)


def exists(path: Path) -> bool:
    """Whether the file or folder is there (a blocking look, out of the loop's way)."""
    return path.exists()


def size(path: str) -> int:
    """Bytes of a file."""
    return Path(path).stat().st_size


def _of(events: list[Event], kind: str) -> list[dict[str, Any]]:
    return [e.data for e in events if e.data["type"] == kind]


async def test_record_a_channel_through_the_rest_api(
    hass: HomeAssistant,
    media: Path,
    loaded_entry: MockConfigEntry,
    engine_sim: EngineSimulator,
    hass_client: ClientSessionGenerator,
) -> None:
    """Two recordings and a viewer share one engine session; the recordings are
    no viewers; stopping finishes the file, and the ffmpeg integration's binary
    remuxes it to an MP4 that plays."""
    assert await async_setup_component(hass, "api", {})
    assert await async_setup_component(hass, "ffmpeg", {})
    await _channel(hass, loaded_entry)
    events = async_capture_events(hass, EVENT_TYPE)
    client = await hass_client()
    resp = await client.post(
        "/api/services/acestream_proxy/record?return_response",
        json={"channel": "Sports 1", "name": "{name} final"},
    )
    assert resp.status == 200, await resp.text()
    first = (await resp.json())["service_response"]
    assert first["path"] == str(media / "acestream" / "Sports 1 final.ts")
    async with client.get(f"/api/acestream_proxy/stream/{CID}") as stream:
        await read_bytes(stream, 200_000)
        second = await hass.services.async_call(
            DOMAIN,
            "record",
            {"content_id": CID, "duration": 2, "name": "{name} final"},
            blocking=True,
            return_response=True,
        )
        assert second is not None
        assert second["path"] == str(media / "acestream" / "Sports 1 final (2).ts")
        [item] = get_hub(hass).broadcasts.values()
        assert item.broadcaster.viewer_count == 1
        assert item.broadcaster.recordings == 2
        assert engine_sim.counters.sessions_opened == 1
        started = _of(events, "recording_started")
        assert [e["recording_id"] for e in started] == [
            first["recording_id"],
            second["recording_id"],
        ]
        assert started[0]["channel"] == "Sports 1"
        assert started[0]["device_id"] == find_device(hass, _channel_id(hass)).id
        await _until(hass, lambda: bool(_of(events, "recording_finished")))
    stopped = await hass.services.async_call(
        DOMAIN,
        "stop_recording",
        {"recording_id": first["recording_id"]},
        blocking=True,
        return_response=True,
    )
    assert stopped is not None
    assert [r["recording_id"] for r in stopped["stopped"]] == [first["recording_id"]]
    await _until(hass, lambda: len(_of(events, "recording_finished")) == 2)
    finished = {e["recording_id"]: e for e in _of(events, "recording_finished")}
    assert finished[second["recording_id"]]["reason"] == "duration reached"
    assert finished[first["recording_id"]]["reason"] == "stopped"
    mp4 = Path(finished[first["recording_id"]]["path"])
    assert mp4 == media / "acestream" / "Sports 1 final.mp4"
    assert sorted(s["codec_name"] for s in await ffprobe_streams(mp4)) == [
        "aac",
        "h264",
    ]
    code, _, errors = await run(
        "ffmpeg", "-v", "error", "-i", str(mp4), "-f", "null", "-"
    )
    assert code == 0
    assert not errors
    assert not _of(events, "recording_failed")
    # Both in the media browser, newest first, played from Home Assistant's media.
    root = await media_source.async_browse_media(hass, f"media-source://{DOMAIN}")
    assert root.children[0].title == "Recordings"
    folder = await media_source.async_browse_media(
        hass, f"media-source://{DOMAIN}/recordings"
    )
    assert [c.title for c in folder.children] == [
        "Sports 1 final",
        "Sports 1 final (2)",
    ]
    played = await media_source.async_resolve_media(
        hass, folder.children[0].media_content_id, None
    )
    assert played.url == "/media/local/acestream/Sports%201%20final.mp4"
    assert played.mime_type == "video/mp4"
    async with client.get(played.url) as resp:
        assert resp.status == 200
        assert len(await resp.read()) == size(str(mp4))
    with pytest.raises(media_source.Unresolvable):
        await media_source.async_resolve_media(
            hass, f"media-source://{DOMAIN}/recording/gone.mp4", None
        )


def _channel_id(hass: HomeAssistant) -> str:
    [entry] = hass.config_entries.async_entries(DOMAIN)
    [subentry_id] = entry.subentries
    return f"channel_{subentry_id}"


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"channel": "Nope"}, "unknown_channel"),
        ({"channel": "Sports 1", "duration": -5}, "duration_not_positive"),
        ({"channel": "Sports 1", "duration": {"hours": 25}}, "duration_too_long"),
        ({"channel": "Sports 1", "name": "../etc/x"}, "name_with_separator"),
        ({"channel": "Sports 1", "name": "{nope}"}, "bad_template"),
        ({"channel": "Sports 1", "folder": "../../elsewhere"}, "outside_media"),
        ({"channel": "Sports 1", "folder": "/etc"}, "outside_media"),
        ({"device_id": "not-a-device"}, "unknown_target"),
        ({"entity_id": "sensor.not_ours"}, "unknown_target"),
        ({}, "missing_what_to_record"),
    ],
)
async def test_bad_calls_say_why(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    media: Path,
    data: dict[str, Any],
    key: str,
) -> None:
    """Each refusal is a ServiceValidationError with its translated reason; no
    broadcast is opened and nothing is written."""
    await _channel(hass, loaded_entry)
    with pytest.raises(ServiceValidationError) as err:
        await hass.services.async_call(
            DOMAIN, "record", data, blocking=True, return_response=True
        )
    assert err.value.translation_key == key
    assert str(err.value)  # translated
    assert not get_hub(hass).broadcasts
    assert not exists(media)


async def test_record_by_device_and_stop_by_entity_or_at_shutdown(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    media: Path,
    entity_registry: er.EntityRegistry,
) -> None:
    """The channel's device or one of its entities names it; its recording sensor
    shows the recording; Home Assistant stopping finishes the file."""
    await _channel(hass, loaded_entry)
    device = find_device(hass, _channel_id(hass))
    assert device is not None
    events = async_capture_events(hass, EVENT_TYPE)
    sensor = next(
        e.entity_id
        for e in er.async_entries_for_device(entity_registry, device.id, True)
        if e.unique_id.endswith("_recording")
    )
    entity_registry.async_update_entity(sensor, disabled_by=None)
    await hass.config_entries.async_reload(loaded_entry.entry_id)
    await hass.async_block_till_done()
    one = await hass.services.async_call(
        DOMAIN, "record", {"device_id": device.id}, blocking=True, return_response=True
    )
    two = await hass.services.async_call(
        DOMAIN, "record", {"entity_id": sensor}, blocking=True, return_response=True
    )
    assert one is not None
    assert two is not None
    recordings = get_recordings(hass)
    await _until(
        hass,
        lambda: all(r.bytes_written > 0 for r in recordings.running.values()),
    )
    get_hub(hass).request_update()
    await _until(hass, lambda: hass.states.get(sensor).state == "recording")
    attributes = hass.states.get(sensor).attributes
    assert attributes["file"] == two["path"]
    assert attributes["recordings"] == 2
    stopped = await hass.services.async_call(
        DOMAIN,
        "stop_recording",
        {"entity_id": sensor},
        blocking=True,
        return_response=True,
    )
    assert stopped is not None
    assert {r["recording_id"] for r in stopped["stopped"]} == {
        one["recording_id"],
        two["recording_id"],
    }
    three = await hass.services.async_call(
        DOMAIN, "record", {"channel": "Sports 1"}, blocking=True, return_response=True
    )
    assert three is not None
    hass.bus.async_fire(EVENT_HOMEASSISTANT_STOP)
    await _until(hass, lambda: not recordings.running)
    ends = {e["recording_id"]: e for e in _of(events, "recording_finished")}
    assert ends[three["recording_id"]]["reason"] == "Home Assistant stopped"
    assert size(three["path"]) == ends[three["recording_id"]]["bytes"]
    triggers = {t["type"] for t in await async_get_triggers(hass, device.id)}
    assert {"recording_started", "recording_finished", "recording_failed"} <= triggers


async def test_an_unwritable_folder_fails_with_a_reason(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, media: Path
) -> None:
    """The folder cannot be made: recording_failed with the system's reason, and
    the broadcast (opened for it) is not harmed."""
    await _channel(hass, loaded_entry)
    events = async_capture_events(hass, EVENT_TYPE)
    (media / "acestream").mkdir(parents=True)
    (media / "acestream" / "blocked").write_text("a file, not a folder")
    answer = await hass.services.async_call(
        DOMAIN,
        "record",
        {"channel": "Sports 1", "folder": "blocked/deeper"},
        blocking=True,
        return_response=True,
    )
    assert answer is not None
    await _until(hass, lambda: bool(_of(events, "recording_failed")))
    [failed] = _of(events, "recording_failed")
    assert failed["recording_id"] == answer["recording_id"]
    assert failed["reason"] == "writing the file failed: Not a directory"
    assert json.dumps(failed)  # plain data on the bus
    [item] = get_hub(hass).broadcasts.values()
    assert not item.broadcaster.closed
    await item.broadcaster.async_close()


async def test_more_ways_to_name_and_to_fail(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    hass_client: ClientSessionGenerator,
    media: Path,
) -> None:
    """An ad-hoc broadcast's device; a target and a channel at once; stopping
    what does not record; a remux that fails keeps the TS; no media folder; no
    engine."""
    assert await async_setup_component(
        hass, "ffmpeg", {"ffmpeg": {"ffmpeg_bin": "/bin/false"}}
    )
    await _channel(hass, loaded_entry)
    events = async_capture_events(hass, EVENT_TYPE)
    other = "89abcdef" * 5
    client = await hass_client()
    async with client.get(f"/api/acestream_proxy/stream/{other}") as stream:
        await read_bytes(stream, 100_000)
        [item] = get_hub(hass).broadcasts.values()
        adhoc = find_device(hass, f"broadcast_{item.broadcaster.infohash}")
        assert adhoc is not None
        channel = find_device(hass, _channel_id(hass))
        assert channel is not None
        for data in (
            {"device_id": adhoc.id, "channel": "Sports 1"},
            {"device_id": [adhoc.id, channel.id]},
        ):
            with pytest.raises(ServiceValidationError) as err:
                await hass.services.async_call(DOMAIN, "record", data, blocking=True)
            assert err.value.translation_key == "more_than_one"
        answer = await hass.services.async_call(
            DOMAIN,
            "record",
            {"device_id": adhoc.id, "duration": 1},
            blocking=True,
            return_response=True,
        )
        assert answer is not None
        assert Path(str(answer["path"])).name.startswith("AceStream ")
        await _until(hass, lambda: bool(_of(events, "recording_finished")))
    [done] = _of(events, "recording_finished")
    assert done["path"] == answer["path"]  # /bin/false remuxes nothing: TS kept
    assert size(done["path"]) == done["bytes"] > 0
    nothing = await hass.services.async_call(
        DOMAIN,
        "stop_recording",
        {"channel": "Sports 1"},
        blocking=True,
        return_response=True,
    )
    assert nothing == {"stopped": []}
    hass.config.media_dirs = {}
    with pytest.raises(ServiceValidationError) as err:
        await hass.services.async_call(
            DOMAIN, "record", {"channel": "Sports 1"}, blocking=True
        )
    assert err.value.translation_key == "no_media_dir"
    hass.config.media_dirs = {"local": str(media)}
    assert await hass.config_entries.async_unload(loaded_entry.entry_id)
    with pytest.raises(HomeAssistantError) as failed:
        await hass.services.async_call(
            DOMAIN, "record", {"channel": "Sports 1"}, blocking=True
        )
    assert failed.value.translation_key == "cannot_record"
