"""Channel lists at scale: how long a 2,000-channel playlist takes to read, diff
and serve, and to subscribe to and refresh in a real Home Assistant.

Two parts, printed side by side:

- the pure functions (parse, diff, render) on a 2,000-channel list, best of 5;
- Home Assistant (bootstrapped in this process, as ``hass`` does, with the
  engine simulator) subscribing to that list from a loopback HTTP server: the
  first refresh adds what fits in one engine entry (1,500 channels and their
  9,000 entities; the other 500 are left out and counted), then a refresh in
  which 10 channels changed, then one the server answers with 304.

Run: ``make bench-lists`` (or ``.venv/bin/python script/bench_lists.py``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
import shutil
import sys
import tempfile
import time
from types import MappingProxyType
from typing import Any

from aiohttp import web

ROOT = Path(__file__).resolve().parent.parent
sys.path.append(str(ROOT))  # tests.simulator and the integration's pure modules

from harness import HassInProcess, log  # noqa: E402

from custom_components.acestream_proxy.channel import (  # noqa: E402
    parse_playlist,
)
from custom_components.acestream_proxy.listdiff import diff_channels  # noqa: E402
from custom_components.acestream_proxy.m3u import render_m3u  # noqa: E402
from tests.simulator import EngineSimulator  # noqa: E402

DOMAIN = "acestream_proxy"
SIZE = 2000
CHANGED = 10


def channel_list(size: int, changed: int = 0) -> str:
    """A list of ``size`` channels with tvg-ids, logos and groups; ``changed``
    of them renamed or on a new id."""
    lines = ['#EXTM3U url-tvg="http://epg.example/guide.xml.gz"']
    for number in range(1, size + 1):
        name, content = f"Channel {number}", number
        if number <= changed:
            if number % 2:
                name += " HD"
            else:
                content += 1_000_000
        lines += [
            f'#EXTINF:-1 tvg-id="ch{number}.example" tvg-name="{name}" '
            f'tvg-logo="http://logo.example/{number}.png" '
            f'group-title="Group {number % 25}",{name}',
            f"acestream://{content:040x}",
        ]
    return "\n".join(lines) + "\n"


def best_of(runs: int, work: Callable[[], Any]) -> float:
    """The fastest of ``runs`` runs, in seconds."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return min(times)


def pure_figures() -> list[tuple[str, float]]:
    """Parse, diff and render, without Home Assistant."""
    text, changed = channel_list(SIZE), channel_list(SIZE, CHANGED)
    parsed = parse_playlist(text).channels
    current = [(f"s{i}", replace(c, subscription="sub")) for i, c in enumerate(parsed)]
    new = parse_playlist(changed).channels

    def diff() -> None:
        result = diff_channels(
            current, new, subscription="sub", taken=(), keep_removed=False, room=0
        )
        assert result.touched == CHANGED, result.counts()

    return [
        (f"parse a {SIZE:,}-channel list", best_of(5, lambda: parse_playlist(text))),
        (f"diff {SIZE:,} against {SIZE:,} ({CHANGED} changed)", best_of(5, diff)),
        (
            f"render the served M3U of {SIZE:,}",
            best_of(5, lambda: render_m3u(parsed, lambda r: f"http://h/{r.value}")),
        ),
    ]


async def ha_figures(work: Path) -> list[tuple[str, float]]:
    """Subscribe and refresh in a real Home Assistant."""
    state = {"text": channel_list(SIZE)}

    async def serve(request: web.Request) -> web.Response:
        etag = f'"{hash(state["text"])}"'
        if request.headers.get("If-None-Match") == etag:
            return web.Response(status=304)
        return web.Response(text=state["text"], headers={"ETag": etag})

    app = web.Application()
    app.router.add_get("/list.m3u", serve)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    sim = EngineSimulator(cold_start=0.1)
    await sim.start()
    figures: list[tuple[str, float]] = []
    try:
        async with HassInProcess(work / "config", name="AceStream lists bench") as ha:
            entry_id, _ = await ha.api.add_entry("127.0.0.1", sim.port)
            await ha.api.wait_entry_loaded(entry_id)
            hass = ha.hass
            entry = hass.config_entries.async_get_entry(entry_id)
            from homeassistant.config_entries import ConfigSubentry

            start = time.perf_counter()
            hass.config_entries.async_add_subentry(
                entry,
                ConfigSubentry(
                    data=MappingProxyType(
                        {
                            "url": f"http://127.0.0.1:{port}/list.m3u",
                            "refresh_hours": 24,
                        }
                    ),
                    subentry_type="subscription",
                    title="Bench",
                    unique_id=None,
                ),
            )
            await hass.async_block_till_done(wait_background_tasks=True)
            added = sum(
                1 for s in entry.subentries.values() if s.subentry_type == "channel"
            )
            figures.append(
                (
                    f"subscribe to {SIZE:,} ({added:,} fit, with their entities)",
                    time.perf_counter() - start,
                )
            )
            for label, text in (
                (f"refresh, {CHANGED} channels changed", channel_list(SIZE, CHANGED)),
                ("refresh, answered 304 (unchanged)", None),
            ):
                if text is not None:
                    state["text"] = text
                start = time.perf_counter()
                answer = await hass.services.async_call(
                    DOMAIN, "refresh_playlist", {}, blocking=True, return_response=True
                )
                await hass.async_block_till_done(wait_background_tasks=True)
                elapsed = time.perf_counter() - start
                result = answer["subscriptions"][0]
                detail = (
                    "not modified"
                    if result.get("not_modified")
                    else f"{result['updated']} updated"
                )
                figures.append((f"{label} ({detail})", elapsed))
    finally:
        await sim.stop()
        await runner.cleanup()
    return figures


async def measure(work: Path) -> list[tuple[str, float]]:
    """Every figure."""
    rows = pure_figures()
    log("starting Home Assistant ...")
    return rows + await ha_figures(work)


def main() -> int:
    """Measure and print (the folder is removed outside the event loop, which
    Home Assistant watches for blocking calls)."""
    work = Path(tempfile.mkdtemp(prefix="acestream-lists-"))
    try:
        rows = asyncio.run(measure(work))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print()
    print("# Channel lists")
    print()
    print("| What | Time |")
    print("|---|---|")
    for label, seconds in rows:
        shown = f"{seconds * 1000:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"
        print(f"| {label} | {shown} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
