"""App access keys, HEAD on every URL form, admin-only actions, action errors."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from http import HTTPStatus
import logging
from typing import Any

import aiohttp
from aiohttp.test_utils import TestClient, TestServer
from homeassistant import auth, loader
from homeassistant.auth import auth_store
from homeassistant.config_entries import SOURCE_USER
from homeassistant.const import EVENT_HOMEASSISTANT_STOP
from homeassistant.core import Context, HomeAssistant, State
from homeassistant.core_config import async_process_ha_core_config
from homeassistant.exceptions import ServiceValidationError, UnknownUser
from homeassistant.helpers import device_registry as dr, entity_registry as er
from homeassistant.helpers.network import NoURLAvailableError
from homeassistant.setup import async_setup_component
import jwt
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    MockUser,
    async_test_home_assistant,
    flush_store,
    mock_restore_cache_with_extra_data,
)
from yarl import URL

from custom_components.acestream_proxy import (
    access as access_module,
    services as services_module,
)
from custom_components.acestream_proxy.access import get_keys, iter_keys
from custom_components.acestream_proxy.compat import REST_SHOWS_VALIDATION_ERRORS
from custom_components.acestream_proxy.const import DOMAIN, SUBENTRY_ACCESS_KEY
from custom_components.acestream_proxy.hub import get_hub
from custom_components.acestream_proxy.services import ActionValidationError
from tests.ha_fixtures import (
    CID,
    CID2,
    PREFIX,
    ClientFactory,
    add_channel,
    add_key,
    call_over_ws,
    until,
)
from tests.helpers import find_device, read_bytes, signed_path, strip_nulls
from tests.simulator import EngineSimulator


async def _key_flow(
    client: TestClient, entry: MockConfigEntry, name: str
) -> dict[str, Any]:
    """Run the access key flow through the UI's HTTP API up to the URL step."""
    resp = await client.post(
        "/api/config/config_entries/subentries/flow",
        json={"handler": [entry.entry_id, SUBENTRY_ACCESS_KEY]},
    )
    assert resp.status == HTTPStatus.OK, await resp.text()
    flow = await resp.json()
    assert flow["step_id"] == "user"
    resp = await client.post(
        f"/api/config/config_entries/subentries/flow/{flow['flow_id']}",
        json={"name": name},
    )
    return dict(await resp.json())


async def _create_key(
    hass: HomeAssistant, client: TestClient, entry: MockConfigEntry, name: str
) -> str:
    """A new key, as an admin creates it in the UI; returns its secret."""
    flow = await _key_flow(client, entry, name)
    assert flow["step_id"] == "show"
    resp = await client.post(
        f"/api/config/config_entries/subentries/flow/{flow['flow_id']}", json={}
    )
    assert (await resp.json())["type"] == "create_entry"
    await hass.async_block_till_done()
    return next(key.secret for key in iter_keys(hass) if key.name == name)


def _key_subentry_id(hass: HomeAssistant, secret: str) -> str:
    return next(key.subentry_id for key in iter_keys(hass) if key.secret == secret)


async def _ends(resp: aiohttp.ClientResponse, timeout: float = 5) -> None:
    """Read until the server cuts the stream (EOF or a broken connection)."""
    async with asyncio.timeout(timeout):
        try:
            while await resp.content.readany():
                pass
        except aiohttp.ClientError:
            pass


@pytest.fixture
async def ui(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, hass_client: ClientFactory
) -> TestClient:
    """An admin's client with the config API; Home Assistant's URL is known."""
    # Components with views first: the test server freezes the router.
    for domain in ("config", "api", "diagnostics", "websocket_api"):
        assert await async_setup_component(hass, domain, {})
    client = await hass_client()
    origin = str(client.make_url("/")).rstrip("/")
    await async_process_ha_core_config(hass, {"internal_url": origin})
    return client


async def test_key_flow_binds_a_random_key_to_the_admin(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    ui: TestClient,
    hass_admin_user: MockUser,
) -> None:
    """The flow shows the app's URL, saves on submit; names are checked."""
    flow = await _key_flow(ui, loaded_entry, "  ")
    assert flow["errors"] == {"name": "invalid_name"}
    flow = await _key_flow(ui, loaded_entry, "Living room TV")
    assert flow["step_id"] == "show"
    url = flow["description_placeholders"]["url"]
    origin = str(ui.make_url("/")).rstrip("/")
    assert url.startswith(f"{origin}{PREFIX}/key/")
    assert url.endswith("/playlist.m3u")
    # Nothing is saved before the user confirms having seen the URL.
    assert not list(iter_keys(hass))
    resp = await ui.post(
        f"/api/config/config_entries/subentries/flow/{flow['flow_id']}", json={}
    )
    assert (await resp.json())["type"] == "create_entry"
    [key] = iter_keys(hass)
    assert key.name == "Living room TV"
    assert key.user_id == hass_admin_user.id
    assert url == f"{origin}{key.prefix}/playlist.m3u"
    # 32 random bytes in URL-safe base64: 256 bits.
    assert len(key.secret) == 43
    assert "secret" not in repr(key)
    assert key.secret not in repr(key)

    flow = await _key_flow(ui, loaded_entry, "living room tv")
    assert flow["errors"] == {"name": "name_taken"}

    # Reconfigure shows the URL again and renames.
    result = await hass.config_entries.subentries.async_init(
        (loaded_entry.entry_id, SUBENTRY_ACCESS_KEY),
        context={"source": "reconfigure", "subentry_id": key.subentry_id},
    )
    assert result["description_placeholders"]["url"] == url
    other = add_key(hass, loaded_entry, hass_admin_user.id, "Kitchen")
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {"name": "kitchen"}
    )
    assert result["errors"] == {"name": "name_taken"}
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {"name": " "}
    )
    assert result["errors"] == {"name": "invalid_name"}
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {"name": "Bedroom TV"}
    )
    assert result["reason"] == "reconfigure_successful"
    assert {k.name for k in iter_keys(hass)} == {"Bedroom TV", "Kitchen"}
    await hass.async_block_till_done()
    device = find_device(hass, f"access_key_{key.subentry_id}")
    assert device is not None
    assert device.name == "Bedroom TV"
    assert other != key.secret


async def test_key_flow_needs_a_user(
    hass: HomeAssistant, loaded_entry: MockConfigEntry
) -> None:
    """Started outside an HTTP request (no user to bind the key to): refused."""
    result = await hass.config_entries.subentries.async_init(
        (loaded_entry.entry_id, SUBENTRY_ACCESS_KEY), context={"source": SOURCE_USER}
    )
    assert result["type"] == "abort"
    assert result["reason"] == "no_user"


async def test_key_urls_play_without_any_header(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    engine_sim: EngineSimulator,
    ui: TestClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Playlist, TS and HLS through the key; its device shows use and streams."""
    caplog.set_level(logging.DEBUG)
    await add_channel(hass, loaded_entry, "Sports 1", CID)
    secret = await _create_key(hass, ui, loaded_entry, "Living room TV")
    subentry_id = _key_subentry_id(hass, secret)
    device = find_device(hass, f"access_key_{subentry_id}")
    assert device is not None
    assert device.name == "Living room TV"
    ids = {
        e.translation_key: e.entity_id
        for e in er.async_entries_for_device(er.async_get(hass), device.id)
    }
    assert hass.states.get(ids["last_used"]).state == "unknown"
    assert hass.states.get(ids["key_streams"]).state == "0"

    base = ui.make_url("/")
    async with aiohttp.ClientSession(base_url=base) as app:
        resp = await app.get(f"{PREFIX}/key/{secret}/playlist.m3u")
        assert resp.status == 200
        assert resp.content_type == "audio/x-mpegurl"
        lines = (await resp.text()).splitlines()
        assert lines[1] == f'#EXTINF:-1 acestream-content-id="{CID}",Sports 1'
        stream = URL(lines[2])
        assert stream.path == f"{PREFIX}/key/{secret}/stream/{CID}"
        assert not stream.query
        await until(lambda: hass.states.get(ids["last_used"]).state != "unknown", 8)

        async with app.get(stream.path) as played:
            assert played.status == 200
            assert strip_nulls(await read_bytes(played, 50_000))
            await until(lambda: hass.states.get(ids["key_streams"]).state == "1", 8)
        await until(lambda: hass.states.get(ids["key_streams"]).state == "0", 8)

        hls = await app.get(f"{PREFIX}/key/{secret}/hls/{CID}/index.m3u8")
        assert hls.status == 200
        segments = [
            line for line in (await hls.text()).splitlines() if line.endswith(".ts")
        ]
        assert segments
        assert segments[0].startswith(f"{PREFIX}/key/{secret}/hls/{CID}/")
        segment = await app.get(segments[0])
        assert segment.status == 200
        assert len(await segment.read()) % 188 == 0

        ih = engine_sim.infohash_for(CID)
        async with app.get(f"{PREFIX}/key/{secret}/stream/infohash/{ih}") as by_ih:
            assert by_ih.status == 200
        hls = await app.get(f"{PREFIX}/key/{secret}/hls/infohash/{ih}/index.m3u8")
        assert hls.status == 200

        wrong = access_module.new_secret()
        for path in (
            f"{PREFIX}/key/{wrong}/playlist.m3u",
            f"{PREFIX}/key/{wrong}/stream/{CID}",
            f"{PREFIX}/key/{wrong}/hls/{CID}/index.m3u8",
        ):
            resp = await app.get(path)
            assert resp.status == 401
            assert "access key" in await resp.text()
        resp = await app.get(f"{PREFIX}/key/%ED%A0%80/playlist.m3u")
        assert resp.status == 401
        # A bearer token is no key, and a key is no bearer token.
        resp = await app.get(f"{PREFIX}/stream/{CID}")
        assert resp.status == 401
    # Ours never log a key, nor does Home Assistant's failed-login warning (the
    # request debug lines of Home Assistant and aiohttp show every path).
    for record in caplog.records:
        if record.name.startswith("custom_components") or (
            record.levelno >= logging.WARNING
        ):
            assert secret not in record.getMessage()
            assert wrong not in record.getMessage()
    # Only one engine session served all of it.
    assert engine_sim.counters.sessions_opened == 1


async def test_deleting_a_key_ends_its_streams(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    engine_sim: EngineSimulator,
    ui: TestClient,
) -> None:
    """A playing TV is cut within seconds of its key's deletion; others go on."""
    secret = await _create_key(hass, ui, loaded_entry, "Old TV")
    async with (
        aiohttp.ClientSession(base_url=ui.make_url("/")) as app,
        app.get(f"{PREFIX}/key/{secret}/stream/{CID}") as played,
        ui.get(f"{PREFIX}/stream/{CID}") as other,
    ):
        assert played.status == 200
        assert await read_bytes(played, 50_000)
        assert hass.config_entries.async_remove_subentry(
            loaded_entry, _key_subentry_id(hass, secret)
        )
        await _ends(played)
        # The viewer with a bearer token keeps playing.
        assert len(await read_bytes(other, 50_000)) >= 50_000
        resp = await app.get(f"{PREFIX}/key/{secret}/playlist.m3u")
        assert resp.status == 401


async def test_an_app_leaving_while_its_broadcast_opens_is_no_stream(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    engine_sim: EngineSimulator,
    ui: TestClient,
) -> None:
    """A key's stream counts from the moment it asks, and stops counting when the
    app gives up while the engine is still opening the broadcast."""
    secret = await _create_key(hass, ui, loaded_entry, "Impatient TV")
    subentry_id = _key_subentry_id(hass, secret)
    keys = get_keys(hass)
    engine_sim.getstream_hang = True
    async with aiohttp.ClientSession(base_url=ui.make_url("/")) as app:
        asking = asyncio.create_task(app.get(f"{PREFIX}/key/{secret}/stream/{CID}"))
        await until(lambda: keys.stream_count(subentry_id) == 1)
        asking.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asking
        await until(lambda: keys.stream_count(subentry_id) == 0)
    assert keys._recheck_unsub is None
    # The start goes on for whoever comes next, and the broadcast lingers.
    engine_sim.getstream_hang = False
    await until(lambda: bool(get_hub(hass).broadcasts))


async def test_keys_of_deactivated_or_deleted_users_stop_working(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    engine_sim: EngineSimulator,
    ui: TestClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The key acts for its user: deactivation cuts its streams, deletion too."""
    admin_group = await hass.auth.async_get_group("system-admin")
    user = MockUser(name="Ex-admin", groups=[admin_group]).add_to_hass(hass)
    secret = add_key(hass, loaded_entry, user.id, "Den TV")
    async with (
        aiohttp.ClientSession(base_url=ui.make_url("/")) as app,
        app.get(f"{PREFIX}/key/{secret}/stream/{CID}") as played,
    ):
        assert played.status == 200
        assert await read_bytes(played, 50_000)
        await hass.auth.async_deactivate_user(user)
        await _ends(played)
        assert (await app.get(f"{PREFIX}/key/{secret}/playlist.m3u")).status == 401
        await hass.auth.async_activate_user(user)
        assert (await app.get(f"{PREFIX}/key/{secret}/playlist.m3u")).status == 200
        async with app.get(f"{PREFIX}/key/{secret}/stream/{CID}") as again:
            assert await read_bytes(again, 50_000)
            await hass.auth.async_remove_user(user)
            await _ends(again)
        assert (await app.get(f"{PREFIX}/key/{secret}/playlist.m3u")).status == 401


async def test_head_answers_like_get_for_every_url_form(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    engine_sim: EngineSimulator,
    ui: TestClient,
    hass_access_token: str,
    hass_client_no_auth: ClientFactory,
) -> None:
    """Signed, key and bearer; stream, HLS and playlist: headers, no session."""
    await add_channel(hass, loaded_entry, "Sports 1", CID)
    secret = await _create_key(hass, ui, loaded_entry, "Probe TV")
    anonymous = await hass_client_no_auth()
    ih = engine_sim.infohash_for(CID)
    forms = {
        f"{PREFIX}/stream/{CID}": "video/mp2t",
        f"{PREFIX}/stream/infohash/{ih}": "video/mp2t",
        f"{PREFIX}/hls/{CID}/index.m3u8": "application/vnd.apple.mpegurl",
        f"{PREFIX}/hls/infohash/{ih}/index.m3u8": "application/vnd.apple.mpegurl",
        f"{PREFIX}/playlist.m3u": "audio/x-mpegurl",
    }
    for path, mime in forms.items():
        key_path = path.replace(PREFIX, f"{PREFIX}/key/{secret}", 1)
        for client, url in (
            (ui, path),  # bearer
            (anonymous, signed_path(hass, path, hass_access_token)),
            (anonymous, key_path),
        ):
            resp = await client.head(url)
            assert resp.status == 200, (url, await resp.text())
            assert resp.headers["Content-Type"].startswith(mime), url
            if mime == "video/mp2t":
                # A live body has no length (0 would tell a player it is empty).
                assert "Content-Length" not in resp.headers
                # Like the GET, whose body is delimited by the connection's end.
                assert resp.headers["Connection"] == "close"
            assert await resp.read() == b""
        # What GET refuses, HEAD refuses.
        assert (await anonymous.head(path)).status == 401
        assert (await anonymous.head(f"{path}?authSig=forged")).status == 401
        bad = path.replace(CID, "zz").replace(ih, "zz")
        if bad != path:
            assert (await ui.head(bad)).status == 400
    # A signature for another path does not open this one.
    other = signed_path(hass, f"{PREFIX}/stream/{CID2}", hass_access_token)
    resp = await anonymous.head(f"{PREFIX}/stream/{CID}?{URL(other).query_string}")
    assert resp.status == 401
    for path in forms:
        wrong = path.replace(PREFIX, f"{PREFIX}/key/x{secret}", 1)
        assert (await anonymous.head(wrong)).status == 401
    assert engine_sim.counters.sessions_opened == 0

    # Segments: HEAD gives the length without counting a client.
    resp = await ui.get(f"{PREFIX}/hls/{CID}/index.m3u8")
    segment = next(
        line
        for line in (await resp.text()).splitlines()
        if ".ts?authSig=" in line and not line.startswith("#")
    )
    seg_path = URL(segment).path
    resp = await ui.head(seg_path)
    assert resp.status == 200
    assert int(resp.headers["Content-Length"]) > 0
    folder = seg_path.rsplit("/", 1)[0]
    assert (await ui.head(f"{folder}/999999.ts")).status == 404
    assert (await ui.head(f"{PREFIX}/hls/{CID}/nothing.txt")).status == 404

    # Without an engine, HEAD says 404 as GET would.
    assert await hass.config_entries.async_unload(loaded_entry.entry_id)
    for path in (f"{PREFIX}/stream/{CID}", f"{PREFIX}/hls/{CID}/index.m3u8"):
        assert (await ui.head(path)).status == 404


async def test_discover_is_for_admins_only(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    hass_ws_client: Callable[..., Awaitable[Any]],
    hass_read_only_access_token: str,
) -> None:
    """A non-admin cannot make Home Assistant probe the network."""
    user_ws = await hass_ws_client(hass, hass_read_only_access_token)
    msg = await call_over_ws(user_ws, "discover", {"hosts": ["127.0.0.1:1"]})
    assert not msg["success"]
    assert msg["error"]["message"] == "Unauthorized"

    admin_ws = await hass_ws_client(hass)
    msg = await call_over_ws(admin_ws, "discover", {"hosts": ["127.0.0.1:1"]})
    assert msg["success"], msg
    assert msg["result"]["response"] == {"found": []}


async def test_playlist_url_is_scoped_to_the_caller(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    ui: TestClient,
    hass_ws_client: Callable[..., Awaitable[Any]],
    hass_read_only_access_token: str,
) -> None:
    """Signed as whoever asks; an app key's URL only for admins."""
    secret = await _create_key(hass, ui, loaded_entry, "Living room TV")
    user_ws = await hass_ws_client(hass, hass_read_only_access_token)
    msg = await call_over_ws(user_ws, "playlist_url", {})
    assert msg["success"], msg
    url = URL(msg["result"]["response"]["url"])
    assert url.path == f"{PREFIX}/playlist.m3u"
    claims = jwt.decode(url.query["authSig"], options={"verify_signature": False})
    own = hass.auth.async_validate_access_token(hass_read_only_access_token)
    assert own is not None
    assert claims["iss"] == own.id
    assert claims["exp"] - claims["iat"] == 86400

    msg = await call_over_ws(user_ws, "playlist_url", {"key": "Living room TV"})
    assert msg["error"]["message"] == "Unauthorized"
    msg = await call_over_ws(user_ws, "playlist_url", {"days": 30})
    assert not msg["success"]

    response = await hass.services.async_call(
        DOMAIN,
        "playlist_url",
        {"key": "living room tv"},
        blocking=True,
        return_response=True,
    )
    assert response is not None
    assert str(response["url"]).endswith(f"{PREFIX}/key/{secret}/playlist.m3u")
    assert response["expires"] is None
    with pytest.raises(ServiceValidationError, match="No access key is called"):
        await hass.services.async_call(
            DOMAIN, "playlist_url", {"key": "nope"}, blocking=True, return_response=True
        )


async def test_action_errors_over_rest_are_400_and_stop_is_a_no_op(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    ui: TestClient,
    hass_ws_client: Callable[..., Awaitable[Any]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Curl gets 400 for a bad call (not a 500 and a traceback), with the message
    from 2026.10 (Home Assistant's REST API leaves it out before); the UI's
    WebSocket API gets the message on every release."""
    for service, data, message in (
        ("stop", {}, "Say what to stop"),
        ("stop", {"channel": "nope"}, "No channel is called nope"),
        ("stop", {"content_id": "xyz"}, "content_id must be 40 hexadecimal"),
        ("stop", {"channel": "A", "infohash": CID}, "Name one broadcast only"),
        ("play", {"entity_id": "media_player.tv"}, "Say what to play"),
        (
            "play",
            {"entity_id": "light.kitchen", "content_id": CID},
            "Choose at least one media player",
        ),
        ("playlist_url?return_response", {"days": 30}, "days must be from 1 to 7"),
        ("discover", {"hosts": ["nas:port"]}, "Not a host or host:port: nas:port"),
        ("discover", {"hosts": ["[::1]:0"]}, "Not a host or host:port: [::1]:0"),
    ):
        resp = await ui.post(f"/api/services/{DOMAIN}/{service}", json=data)
        assert resp.status == 400, (service, data, resp.status)
        body = await resp.text()
        if REST_SHOWS_VALIDATION_ERRORS:
            assert message in body, (service, body)
        else:
            assert message not in body, (service, body)
    assert "Traceback" not in caplog.text

    resp = await ui.post(
        f"/api/services/{DOMAIN}/stop?return_response", json={"content_id": CID}
    )
    assert resp.status == 200
    body = await resp.json()
    assert body["service_response"] == {"stopped": False, "name": CID}
    assert "is not playing, nothing to stop" in caplog.text

    # The UI (WebSocket API) shows the message, translated from its key from
    # 2026.10; before, Home Assistant checks vol.Invalid first (invalid_format).
    ws = await hass_ws_client(hass)
    msg = await call_over_ws(ws, "stop", {"channel": "Nope"}, response=False)
    if REST_SHOWS_VALIDATION_ERRORS:
        assert msg["error"]["code"] == "service_validation_error"
        assert msg["error"]["message"] == "Validation error: No channel is called Nope"
        assert msg["error"]["translation_key"] == "unknown_channel"
        assert msg["error"]["translation_placeholders"] == {"channel": "Nope"}
    else:
        assert msg["error"]["code"] == "invalid_format"
        assert msg["error"]["message"] == "No channel is called Nope"

    # The wording follows the action.
    with pytest.raises(ServiceValidationError, match="Say what to stop"):
        await hass.services.async_call(DOMAIN, "stop", {}, blocking=True)
    with pytest.raises(ServiceValidationError, match="Say what to play"):
        await hass.services.async_call(
            DOMAIN, "play", {"entity_id": "media_player.tv"}, blocking=True
        )


async def test_diagnostics_never_show_keys(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    ui: TestClient,
    hass_client: ClientFactory,
) -> None:
    """Diagnostics count keys but never show them."""
    from pytest_homeassistant_custom_component.components.diagnostics import (
        get_diagnostics_for_config_entry,
    )

    secret = await _create_key(hass, ui, loaded_entry, "Living room TV")
    diagnostics = await get_diagnostics_for_config_entry(
        hass, hass_client, loaded_entry
    )
    assert secret not in str(diagnostics)
    assert diagnostics["entry"]["access_keys"] == 1
    assert get_keys(hass).find(secret) is not None


async def test_key_url_plays_after_a_full_restart(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    engine_sim: EngineSimulator,
    ui: TestClient,
    hass_storage: dict[str, Any],
    hass_access_token: str,
) -> None:
    """A new Home Assistant on the same storage: the app's URLs still play.

    A signed URL of the first instance does not (new signing secret): that is
    what keys are for.
    """
    await add_channel(hass, loaded_entry, "Sports 1", CID)
    secret = await _create_key(hass, ui, loaded_entry, "Living room TV")
    signed = signed_path(hass, f"{PREFIX}/playlist.m3u", hass_access_token)
    assert (await ui.get(signed, headers={"Authorization": ""})).status == 200
    # Home Assistant stops (an update): engine sessions end, storage is written.
    assert await hass.config_entries.async_unload(loaded_entry.entry_id)
    await flush_store(hass.config_entries._store)
    await flush_store(hass.auth._store._store)
    assert secret in str(hass_storage["core.config_entries"])

    async with async_test_home_assistant(config_dir=hass.config.config_dir) as new:
        try:
            # What bootstrap loads from storage: users, then config entries.
            new.data.pop(loader.DATA_CUSTOM_COMPONENTS)
            store = auth_store.AuthStore(new)
            await store.async_load()
            new.auth = auth.AuthManager(new, store, {}, {})
            await new.config_entries.async_initialize()
            assert await async_setup_component(new, DOMAIN, {})
            await new.async_block_till_done()
            async with TestClient(TestServer(new.http.app)) as app:
                resp = await app.get(f"{PREFIX}/key/{secret}/playlist.m3u")
                assert resp.status == 200
                stream = URL((await resp.text()).splitlines()[2])
                async with app.get(stream.path) as played:
                    assert played.status == 200
                    assert strip_nulls(await read_bytes(played, 50_000))
                assert (await app.get(signed)).status == 401
        finally:
            for entry in new.config_entries.async_entries(DOMAIN):
                await new.config_entries.async_unload(entry.entry_id)
            await new.async_stop(force=True)


async def test_playlist_url_errors(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No URL apps can reach; an unknown caller asking for an app's URL."""

    def no_url(_hass: HomeAssistant) -> str:
        raise NoURLAvailableError

    with monkeypatch.context() as patch:
        patch.setattr(services_module, "get_url", no_url)
        patch.setattr(access_module, "get_url", no_url)
        assert access_module.app_playlist_url(hass, "s").startswith(
            "http://<home-assistant>:8123/"
        )
        with pytest.raises(ServiceValidationError, match="no URL that apps can reach"):
            await hass.services.async_call(
                DOMAIN, "playlist_url", {}, blocking=True, return_response=True
            )
    with pytest.raises(UnknownUser):
        await hass.services.async_call(
            DOMAIN,
            "playlist_url",
            {"key": "x"},
            blocking=True,
            return_response=True,
            context=Context(user_id="nobody"),
        )
    err = ActionValidationError(
        translation_domain=DOMAIN,
        translation_key="unknown_key",
        translation_placeholders={"name": "TV"},
    )
    assert err.error_message.startswith("No access key is called TV.")
    assert err.path == []


async def test_home_assistant_stops_while_an_app_watches(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    engine_sim: EngineSimulator,
    ui: TestClient,
) -> None:
    """The key re-check timer ends with Home Assistant, and the stream with it."""
    secret = await _create_key(hass, ui, loaded_entry, "TV")
    keys = get_keys(hass)
    async with (
        aiohttp.ClientSession(base_url=ui.make_url("/")) as app,
        app.get(f"{PREFIX}/key/{secret}/stream/{CID}") as played,
    ):
        assert await read_bytes(played, 50_000)
        assert keys.stream_count(_key_subentry_id(hass, secret)) == 1
        hass.bus.async_fire(EVENT_HOMEASSISTANT_STOP)
        await hass.async_block_till_done()
        await _ends(played)
    assert keys._recheck_unsub is None


async def test_last_use_is_kept_across_restarts(
    hass: HomeAssistant, engine_sim: EngineSimulator
) -> None:
    """The Last used sensor comes back with what it showed before the restart."""
    before = datetime(2026, 11, 30, 20, 15, tzinfo=UTC)
    mock_restore_cache_with_extra_data(
        hass,
        [
            (
                State("sensor.bedroom_tv_last_used", before.isoformat()),
                {
                    "native_value": {
                        "__type": "<class 'datetime.datetime'>",
                        "isoformat": before.isoformat(),
                    },
                    "native_unit_of_measurement": None,
                },
            )
        ],
    )
    entry = MockConfigEntry(
        domain=DOMAIN,
        data={"host": "127.0.0.1", "port": engine_sim.port},
        subentries_data=[
            {
                "data": {"secret": access_module.new_secret(), "user_id": "u"},
                "subentry_type": SUBENTRY_ACCESS_KEY,
                "title": "Bedroom TV",
                "unique_id": None,
            }
        ],
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    state = hass.states.get("sensor.bedroom_tv_last_used")
    assert state is not None
    assert state.state == before.isoformat()
    assert hass.states.get("sensor.bedroom_tv_streams").state == "0"


async def test_a_key_device_goes_with_its_key_only(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    hass_admin_user: MockUser,
    hass_ws_client: Callable[..., Awaitable[Any]],
) -> None:
    """The device page cannot delete a live key's device (delete the key); a
    deleted key takes its device and entities, and no other key's."""
    assert await async_setup_component(hass, "config", {})
    secret = add_key(hass, loaded_entry, hass_admin_user.id, "Hall TV")
    other = add_key(hass, loaded_entry, hass_admin_user.id, "Kitchen")
    await hass.async_block_till_done()
    registry = dr.async_get(hass)
    live = find_device(hass, f"access_key_{_key_subentry_id(hass, secret)}")
    assert live is not None
    stale = registry.async_get_or_create(
        config_entry_id=loaded_entry.entry_id,
        identifiers={(DOMAIN, "access_key_gone")},
        name="Gone",
    )
    ws = await hass_ws_client(hass)
    results = []
    for device in (live, stale):
        await ws.send_json_auto_id(
            {
                "type": "config/device_registry/remove_config_entry",
                "config_entry_id": loaded_entry.entry_id,
                "device_id": device.id,
            }
        )
        results.append((await ws.receive_json())["success"])
    assert results == [False, True]

    entities = er.async_get(hass)
    kept = find_device(hass, f"access_key_{_key_subentry_id(hass, other)}")
    assert kept is not None
    live_entities = er.async_entries_for_device(entities, live.id)
    assert live_entities
    assert hass.config_entries.async_remove_subentry(
        loaded_entry, _key_subentry_id(hass, secret)
    )
    await hass.async_block_till_done()
    assert registry.async_get(live.id) is None
    assert all(entities.async_get(e.entity_id) is None for e in live_entities)
    assert all(hass.states.get(e.entity_id) is None for e in live_entities)
    assert registry.async_get(kept.id) is not None
    assert er.async_entries_for_device(entities, kept.id)
