"""Media source search over channels and playing broadcasts, through Home
Assistant's own media_source API and WebSocket commands; on releases without
search, the browser works as before."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp.test_utils import TestClient
from homeassistant.components import media_source
from homeassistant.components.media_player.const import MediaClass
from homeassistant.components.media_player.errors import BrowseError
from homeassistant.core import HomeAssistant
from homeassistant.setup import async_setup_component
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.typing import WebSocketGenerator

from custom_components.acestream_proxy import compat
from custom_components.acestream_proxy.channel import Channel
from custom_components.acestream_proxy.const import DOMAIN, SUBENTRY_CHANNEL
from custom_components.acestream_proxy.hub import get_hub
from custom_components.acestream_proxy.media_source import (
    MAX_SEARCH_RESULTS,
    async_get_media_source,
)
from custom_components.acestream_proxy.stream.engine import ContentKind, ContentRef
from tests.ha_fixtures import CID, CID2, PREFIX, add_channel
from tests.helpers import read_bytes
from tests.simulator import EngineSimulator

CID3 = "2c4848271c91ce2d8965ce416267c25047dc8143"
ROOT = f"media-source://{DOMAIN}"

type ClientFactory = Callable[[], Awaitable[TestClient]]


async def _channels(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    await add_channel(hass, entry, "Sports One", CID, group="Sports")
    await add_channel(hass, entry, "Sports News", CID2, group="News")
    await add_channel(hass, entry, "Cooking", CID3)


class Searcher:
    """Asks Home Assistant's media_source/search_media where that exists; on
    releases without media search, asks our media source's search directly (what
    that command ends in), so both legs judge the same answers."""

    def __init__(self, hass: HomeAssistant, ws: Any) -> None:
        self.hass = hass
        self.ws = ws

    async def items(
        self, query: str, content_id: str = ROOT, classes: list[str] | None = None
    ) -> list[dict[str, Any]]:
        if not compat.MEDIA_SEARCH:
            source = await async_get_media_source(self.hass)
            identifier = content_id.removeprefix(ROOT).removeprefix("/")
            found = source.search(identifier, query, set(classes or ()))
            return [item.as_dict() for item in found]
        message: dict[str, Any] = {
            "type": "media_source/search_media",
            "media_content_id": content_id,
            "search_query": query,
        }
        if classes is not None:
            message["media_filter_classes"] = classes
        await self.ws.send_json_auto_id(message)
        answer = await self.ws.receive_json()
        if not answer["success"]:
            assert answer["error"]["code"] == "search_media_failed", answer
            raise BrowseError(answer["error"]["message"])
        return list(answer["result"]["result"])

    async def titles(self, query: str, *args: Any) -> list[str]:
        return [item["title"] for item in await self.items(query, *args)]


async def test_search_over_channels_and_playing_broadcasts(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    engine_sim: EngineSimulator,
    hass_ws_client: WebSocketGenerator,
    hass_client: ClientFactory,
) -> None:
    """Words match names, groups and ids; a group scopes the search; a class
    filter leaves folders out; a broadcast started by id is found while it plays;
    results resolve and play; unknown places are errors."""
    assert await async_setup_component(hass, "media_source", {})
    await _channels(hass, loaded_entry)
    search = Searcher(hass, await hass_ws_client(hass))

    assert await search.titles("sports") == [
        "Sports",
        "Sports News",
        "Sports One",
    ]
    # Every word must match, in any field: "news" is Sports News' group.
    assert await search.titles("NEWS sports") == ["Sports News"]
    assert await search.titles(CID3[:12]) == ["Cooking"]
    assert await search.titles("sports", f"{ROOT}/group/Sports") == ["Sports One"]
    assert await search.titles("sports", ROOT, [MediaClass.CHANNEL]) == [
        "Sports News",
        "Sports One",
    ]
    assert await search.titles("sports", ROOT, [MediaClass.MUSIC]) == []
    assert await search.titles("nothing like it") == []
    for place in ("group/Nope", "elsewhere", f"channel/content_id/{CID}"):
        with pytest.raises(BrowseError, match=place):
            await search.items("x", f"{ROOT}/{place}")

    # A broadcast started by an id that is no channel is found while it plays.
    adhoc = "3d4848271c91ce2d8965ce416267c25047dc8144"
    infohash = engine_sim.infohash_for(adhoc)
    client = await hass_client()
    async with client.get(f"{PREFIX}/stream/{adhoc}") as resp:
        await read_bytes(resp, 20_000)
        [item] = await search.items(infohash[:8])
        assert item["title"] == f"AceStream {infohash[:8]}"
        assert item["can_play"]
        # A channel playing is found once, as the channel.
        async with client.get(f"{PREFIX}/stream/{CID3}") as playing:
            await read_bytes(playing, 20_000)
            assert await search.titles("cook") == ["Cooking"]
        played = await media_source.async_resolve_media(
            hass, item["media_content_id"], None
        )
        assert played.url == f"{PREFIX}/hls/infohash/{infohash}/index.m3u8"
        ref = ContentRef(ContentKind.INFOHASH, infohash)
        assert await get_hub(hass).async_stop(ref)
    assert await search.titles(infohash[:8]) == []


async def test_search_results_are_bounded(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    hass_ws_client: WebSocketGenerator,
) -> None:
    """A broad query over a large import answers a page, not everything."""
    assert await async_setup_component(hass, "media_source", {})
    # Channels of an engine entry not loaded are offered too, as in the browser.
    MockConfigEntry(
        domain=DOMAIN,
        data={"host": "127.0.0.1", "port": 1},
        subentries_data=[
            {
                "data": Channel(
                    f"Channel {number}",
                    ContentRef(ContentKind.CONTENT_ID, f"{number:040x}"),
                ).as_data(),
                "subentry_type": SUBENTRY_CHANNEL,
                "title": f"Channel {number}",
                "unique_id": f"{number:040x}",
            }
            for number in range(MAX_SEARCH_RESULTS + 20)
        ],
    ).add_to_hass(hass)
    search = Searcher(hass, await hass_ws_client(hass))
    assert len(await search.items("channel")) == MAX_SEARCH_RESULTS
    assert await search.titles("channel 119") == ["Channel 119"]


async def test_releases_without_search_still_browse(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    hass_ws_client: WebSocketGenerator,
) -> None:
    """The gate matches what Home Assistant offers; browsing works either way."""
    assert await async_setup_component(hass, "media_source", {})
    await _channels(hass, loaded_entry)
    root = await media_source.async_browse_media(hass, ROOT)
    assert [c.title for c in root.children] == ["News", "Sports", "Cooking"]
    assert root.as_dict().get("can_search", False) is compat.MEDIA_SEARCH
    # Home Assistant has the search command exactly where the gate says.
    ws = await hass_ws_client(hass)
    await ws.send_json_auto_id(
        {"type": "media_source/search_media", "search_query": "cook"}
    )
    answer = await ws.receive_json()
    command_known = answer.get("error", {}).get("code") != "unknown_command"
    assert command_known is compat.MEDIA_SEARCH


pytestmark = pytest.mark.usefixtures("engine_sim")
