"""VLC (cvlc) plays HLS through Home Assistant, with nothing wrong in its log.

VLC's adaptive module is strict at the start of a live playlist: a segment whose
tables or timestamps it reads as a break ends its demuxer ("Ending demuxer stream.
[discontinuity]") and then loses its clock ("Timestamp conversion failed ... no
reference clock"). It plays the HLS of a broadcast somebody already watches (the
first playlist is cut from the replay window) and of a cold one, as a non-root user
(VLC refuses root), with its debug log read for those lines.

VLC 3.0 also rebuffers once a few seconds into every start here ("ES_OUT_SET_(GROUP_)
PCR is called too late", then "ES_OUT_RESET_PCR called"), warm and cold, on both legs:
a stall the README lists. A block a decoder receives while its clock restarts (before
or just after the next picture) is reported with the same "no reference clock" line,
so that line counts only before VLC's own first reset; a break in our stream still
shows as its demuxer ending or a discontinuity, which count throughout, and VLC must
show a picture after its reset.

Needs cvlc: ``bash script/e2e_setup.sh`` installs it (vlc-bin, vlc-plugin-base).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
import os
import pwd
import shutil
import subprocess
import time

from aiohttp.test_utils import TestClient
from homeassistant.core import HomeAssistant
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.acestream_proxy.hub import get_hub
from tests.helpers import read_bytes, signed_path
from tests.simulator import EngineSimulator

WARM = "0123456789abcdef0123456789abcdef01234567"
COLD = "89abcdef0123456789abcdef0123456789abcdef"
VLC_USER = "acestream-e2e"
PLAY_SECONDS = 8
PROBLEMS = (
    "Ending demuxer stream",
    "discontinuity",
    "Timestamp conversion failed",
    "no reference clock",
)

type ClientFactory = Callable[[], Awaitable[TestClient]]


def _cvlc() -> list[str]:
    """cvlc, through runuser as a user of its own when we are root."""
    path = shutil.which("cvlc")
    if path is None:
        pytest.fail("cvlc not found: run `bash script/e2e_setup.sh`", pytrace=False)
    if os.geteuid() != 0:
        return [path]
    try:
        pwd.getpwnam(VLC_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/bin/false",
             VLC_USER],
            check=True, capture_output=True,
        )  # fmt: skip
    return ["runuser", "-u", VLC_USER, "--", path]


async def _vlc_log(url: str) -> str:
    """cvlc -vv on ``url`` for PLAY_SECONDS, pictures and sound dropped."""
    proc = await asyncio.create_subprocess_exec(
        *_cvlc(), "-I", "dummy", "--vout", "dummy", "--aout", "dummy", "-vv",
        "--no-media-library", "--run-time", str(PLAY_SECONDS), "--play-and-exit", url,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    try:
        async with asyncio.timeout(PLAY_SECONDS + 40):
            out, _ = await proc.communicate()
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    return out.decode(errors="replace")


def _first_reset(lines: list[str]) -> int:
    """Index of VLC's first clock reset of its own (its rebuffering); the log's
    length if there is none. VLC must show a picture after it."""
    for index, line in enumerate(lines):
        if "ES_OUT_RESET_PCR called" in line:
            after = lines[index:]
            assert any("Received first picture" in x for x in after), "\n".join(after)
            return index
    return len(lines)


def _judge(log: str, what: str) -> None:
    assert "Received first picture" in log, f"{what}: VLC showed no picture\n{log}"
    lines = log.splitlines()
    reset = _first_reset(lines)
    bad = [
        index
        for index, line in enumerate(lines)
        if any(problem in line for problem in PROBLEMS)
        # The playlist's own tag names are echoed in debug lines about parsing.
        and "EXT-X-DISCONTINUITY" not in line
        and not (index > reset and "no reference clock" in line)
    ]
    # What VLC did just before the first one says which segment and stream it
    # was reading: the line alone does not.
    lead = lines[max(0, bad[0] - 40) : bad[0]] if bad else []
    assert not bad, "\n".join(
        [f"{what}:", *(lines[i] for i in bad), "---- before the first:", *lead]
    )


@pytest.mark.timeout(150)
async def test_vlc_plays_hls_without_a_discontinuity(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    engine_sim: EngineSimulator,
    hass_client: ClientFactory,
    hass_access_token: str,
) -> None:
    """Warm (cut from the replay window) and cold: a clean start in VLC's log."""
    client = await hass_client()
    async with client.get(f"/api/acestream_proxy/stream/{WARM}") as ts:
        await read_bytes(ts, 10_000)
        [item] = get_hub(hass).broadcasts.values()
        ring = item.broadcaster.ring
        async with asyncio.timeout(30):
            while ring.age(ring.first_seq, time.monotonic()) < 6:
                await asyncio.sleep(0.2)
        warm_url = client.make_url(
            signed_path(hass, f"/api/acestream_proxy/hls/{WARM}/index.m3u8",
                        hass_access_token)
        )  # fmt: skip
        _judge(await _vlc_log(str(warm_url)), "warm")
    cold_url = client.make_url(
        signed_path(hass, f"/api/acestream_proxy/hls/{COLD}/index.m3u8",
                    hass_access_token)
    )  # fmt: skip
    _judge(await _vlc_log(str(cold_url)), "cold")
    assert engine_sim.counters.sessions_opened == 2
