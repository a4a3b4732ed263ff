"""Helpers shared by the stream tests: reading TS, real ffmpeg clients."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
import json
from pathlib import Path
from typing import Any

from aiohttp import ClientResponse, ClientSession
from homeassistant.components.http.auth import async_sign_path
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr

from custom_components.acestream_proxy.const import DOMAIN
from tests.simulator import EngineSimulator, SimCounters

PACKET = 188
NULL_PID = 0x1FFF


def find_device(hass: HomeAssistant, identifier: str) -> dr.DeviceEntry | None:
    """Our device with this identifier, whichever engine entry has it.

    Through each entry's devices: the registry's identifier lookups differ
    across Home Assistant releases, and from 2026.8 are per config entry.
    """
    registry = dr.async_get(hass)
    found = {
        device.id: device
        for entry in hass.config_entries.async_entries(DOMAIN)
        for device in dr.async_entries_for_config_entry(registry, entry.entry_id)
        if (DOMAIN, identifier) in device.identifiers
    }
    assert len(found) <= 1, f"{identifier} is on {len(found)} devices"
    return next(iter(found.values()), None)


def device_entries(hass: HomeAssistant, device: dr.DeviceEntry) -> set[str]:
    """The engine entries a device belongs to (one, from Home Assistant 2026.8)."""
    registry = dr.async_get(hass)
    return {
        entry.entry_id
        for entry in hass.config_entries.async_entries(DOMAIN)
        if device.id
        in {d.id for d in dr.async_entries_for_config_entry(registry, entry.entry_id)}
    }


async def read_bytes(resp: ClientResponse, size: int, timeout: float = 10) -> bytes:
    """Read at least ``size`` bytes (or until EOF)."""
    buf = bytearray()
    async with asyncio.timeout(timeout):
        while len(buf) < size:
            chunk = await resp.content.readany()
            if not chunk:
                break
            buf += chunk
    return bytes(buf)


async def read_for(resp: ClientResponse, seconds: float) -> bytes:
    """Read whatever arrives during ``seconds``."""
    buf = bytearray()
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    while (left := end - loop.time()) > 0:
        try:
            async with asyncio.timeout(left):
                chunk = await resp.content.readany()
        except TimeoutError:
            break
        if not chunk:
            break
        buf += chunk
    return bytes(buf)


async def read_until(
    resp: ClientResponse, done: Callable[[bytes], bool], timeout: float = 10
) -> bytes:
    """Read until ``done`` holds for what was read (TimeoutError if it never does)."""
    buf = bytearray()
    async with asyncio.timeout(timeout):
        while not done(bytes(buf)):
            chunk = await resp.content.readany()
            if not chunk:
                break
            buf += chunk
    return bytes(buf)


async def read_to_end(resp: ClientResponse, timeout: float = 5) -> bytes:
    """Read until the server ends the stream (TimeoutError if it never does)."""
    buf = bytearray()
    async with asyncio.timeout(timeout):
        while chunk := await resp.content.readany():
            buf += chunk
    return bytes(buf)


def pids(data: bytes) -> list[int]:
    """PID of every packet of aligned TS."""
    assert len(data) % PACKET == 0
    return [
        ((data[i + 1] & 0x1F) << 8) | data[i + 2] for i in range(0, len(data), PACKET)
    ]


def packet_aligned(data: bytes) -> bytes:
    """``data`` from its first packet start.

    The stream body is not chunked: a read that follows an earlier one can start
    anywhere in a packet, wherever TCP split the bytes.
    """
    for start in range(min(PACKET, len(data))):
        if all(data[pos] == 0x47 for pos in range(start, len(data), PACKET)[:3]):
            return data[start:]
    return data


def strip_nulls(data: bytes) -> bytes:
    """Drop null packets (the cold-start keep-alive)."""
    data = packet_aligned(data)
    whole = len(data) // PACKET * PACKET
    return b"".join(
        data[i : i + PACKET]
        for i in range(0, whole, PACKET)
        if ((data[i + 1] & 0x1F) << 8) | data[i + 2] != NULL_PID
    )


def discontinuities(data: bytes) -> int:
    """Packets flagged discontinuity_indicator."""
    data = packet_aligned(data)
    whole = len(data) // PACKET * PACKET
    return sum(
        1
        for i in range(0, whole, PACKET)
        if data[i + 3] & 0x20 and data[i + 4] > 0 and data[i + 5] & 0x80
    )


async def run(*args: str, timeout: float = 60) -> tuple[int, str, str]:
    """Run a real program; return code, stdout, stderr."""
    proc = await asyncio.create_subprocess_exec(
        *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        async with asyncio.timeout(timeout):
            out, err = await proc.communicate()
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def ffmpeg_decodes(
    target: str | Path, seconds: float, timeout: float = 60
) -> tuple[int, str, str]:
    """Decode ``seconds`` of a URL or file with ffmpeg, warnings on; its code,
    stdout, stderr (a clean decode prints nothing)."""
    return await run(
        "ffmpeg", "-v", "warning", "-i", str(target), "-t", str(seconds),
        "-f", "null", "-", timeout=timeout,
    )  # fmt: skip


async def ffprobe_streams(target: str | Path) -> list[dict[str, Any]]:
    """Streams ffprobe finds in a URL or file."""
    code, out, err = await run(
        "ffprobe",
        "-v",
        "error",
        "-analyzeduration",
        "3000000",
        "-probesize",
        "2000000",
        "-show_streams",
        "-of",
        "json",
        str(target),
    )
    assert code == 0, err
    return list(json.loads(out)["streams"])


async def first_video_frame(target: str | Path) -> dict[str, Any]:
    """The first decoded video frame of a URL or file."""
    code, out, err = await run(
        "ffprobe",
        "-v",
        "error",
        "-select_streams",
        "v:0",
        "-read_intervals",
        "%+#1",
        "-show_frames",
        "-of",
        "json",
        str(target),
    )
    assert code == 0, err
    frames = json.loads(out)["frames"]
    assert frames, err
    return dict(frames[0])


def signed_path(hass: HomeAssistant, path: str, token: str) -> str:
    """``path?authSig=...`` signed for 5 minutes as the owner of ``token``."""
    refresh = hass.auth.async_validate_access_token(token)
    assert refresh is not None
    return async_sign_path(
        hass, path, timedelta(minutes=5), refresh_token_id=refresh.id
    )


async def load_on_engine(sim: EngineSimulator, content_id: str) -> None:
    """Play ``content_id`` once on the engine by another player (start, then stop).

    A strict engine then holds the content's descriptor and accepts its infohash. The
    simulator's counters start again from zero, so a test counts only its own calls.
    """
    async with ClientSession() as http:
        async with http.get(
            f"{sim.base_url}/ace/getstream",
            params={"content_id": content_id, "format": "json", "pid": "other"},
        ) as resp:
            body = await resp.json()
        assert body["error"] is None, body
        async with http.get(
            body["response"]["command_url"], params={"method": "stop"}
        ) as resp:
            assert (await resp.json())["response"] == "ok"
    sim.counters = SimCounters()
