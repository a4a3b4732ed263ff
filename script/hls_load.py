"""HLS at scale through Home Assistant: N clients that load like hls.js, against N TS
viewers, in one run.

Part of ``make bench`` (script/bench.py runs it on its Home Assistant, after the fan-out
rows). The clients run in a process of their own (``--client``), pinned to the
client core like the C client, so their latency figures do not wait on the bench's
own event loop (which also runs the engine simulator).

Each client behaves like hls.js on a live playlist: one keep-alive connection and a
User-Agent of its own (Home Assistant counts each as a viewer); it loads the
playlist, starts three segments from its end (hls.js' default live sync of three
target durations) and fetches those segments one after another; then it reloads
the playlist one target duration after its last load (half of it when the last load
brought nothing new) and fetches every new segment once, in order. Clients start
spread over the ramp; every request is timed from sending to the last body byte.

With ``--ll`` each client loads like hls.js in low-latency mode at the live edge (the
HA frontend's player): a blocking reload of the playlist for the part it hints
(``_HLS_msn``/``_HLS_part``), then every part listed after the last one it fetched,
in order, and again; its reload times include the wait for that part to be cut.
"""

from __future__ import annotations

import argparse
import asyncio
from dataclasses import dataclass, field
import json
import math
import re
import statistics
import sys
import time
from typing import Any

LIVE_SYNC_SEGMENTS = 3
_TARGET = re.compile(r"^#EXT-X-TARGETDURATION:(\d+)", re.M)
_SEQ = re.compile(r"/(\d+)\.ts(?:\?|$)")
_PART = re.compile(r'^#EXT-X-PART:.*URI="([^"]+)"', re.M)
_HINT = re.compile(r'^#EXT-X-PRELOAD-HINT:TYPE=PART,URI="([^"]+)"', re.M)
_PART_SEQ = re.compile(r"/(\d+)\.(\d+)\.ts(?:\?|$)")


# ------------------------------------------------------------------- the client


@dataclass(slots=True)
class Client:
    """One hls.js-like client; its requests as (kind, start s, ms, bytes, status)."""

    index: int
    requests: list[tuple[str, float, float, int, int]] = field(default_factory=list)
    last_seq: int = -1
    missed: int = 0  # segments (parts) that left the playlist before it got them
    parts: list[tuple[int, int]] = field(default_factory=list)  # (seq, index) got

    async def run(
        self, session: Any, base: str, playlist: str, t0: float, end: float
    ) -> None:
        """Load until ``end`` (seconds since ``t0``)."""
        while time.monotonic() - t0 < end:
            polled = time.monotonic()
            text, status = await self._get(session, base + playlist, "playlist", t0)
            if status != 200:
                await asyncio.sleep(1.0)
                continue
            target = float(m.group(1)) if (m := _TARGET.search(text)) else 2.0
            uris = [line for line in text.splitlines() if line and line[0] != "#"]
            listed = [(int(m.group(1)), uri) for uri in uris if (m := _SEQ.search(uri))]
            if self.last_seq < 0 and listed:
                self.last_seq = listed[max(0, len(listed) - LIVE_SYNC_SEGMENTS)][0] - 1
            fresh = [(seq, uri) for seq, uri in listed if seq > self.last_seq]
            if fresh and fresh[0][0] > self.last_seq + 1:
                self.missed += fresh[0][0] - self.last_seq - 1
            for seq, uri in fresh:
                if time.monotonic() - t0 >= end:
                    return
                _, status = await self._get(session, base + uri, "segment", t0)
                self.last_seq = seq
            wait = target if fresh else target / 2
            await asyncio.sleep(max(0.0, polled + wait - time.monotonic()))

    async def run_ll(
        self, session: Any, base: str, playlist: str, t0: float, end: float
    ) -> None:
        """Load like hls.js in low-latency mode until ``end``."""
        joint = "&" if "?" in playlist else "?"
        got: tuple[int, int] | None = None  # where it is in the part list
        query = ""
        while time.monotonic() - t0 < end:
            text, status = await self._get(
                session, base + playlist + query, "playlist", t0
            )
            hint = _HINT.search(text) if status == 200 else None
            at = _PART_SEQ.search(hint.group(1)) if hint else None
            if at is None:
                query = ""
                await asyncio.sleep(0.5)
                continue
            listed = [
                (int(m.group(1)), int(m.group(2)), uri)
                for uri in _PART.findall(text)
                if (m := _PART_SEQ.search(uri))
            ]
            if got is None and listed:
                got = (listed[-1][0], listed[-1][1] - 1)  # from the newest part on
            for seq, index, uri in listed:
                if got is None or (seq, index) <= got:
                    continue
                if (seq, index) not in ((got[0], got[1] + 1), (got[0] + 1, 0)):
                    self.missed += 1
                if time.monotonic() - t0 >= end:
                    return
                await self._get(session, base + uri, "segment", t0)
                got = (seq, index)
                self.parts.append(got)
            query = f"{joint}_HLS_msn={at.group(1)}&_HLS_part={at.group(2)}"

    async def _get(
        self, session: Any, url: str, kind: str, t0: float
    ) -> tuple[str, int]:
        started = time.monotonic()
        size, status, text = 0, 0, ""
        try:
            async with session.get(url) as resp:
                status = resp.status
                if kind == "playlist":
                    text = await resp.text()
                    size = len(text)
                else:
                    async for chunk in resp.content.iter_any():
                        size += len(chunk)
        except Exception:  # a failed request is counted, not fatal
            status = -1
        self.requests.append(
            (kind, started - t0, (time.monotonic() - started) * 1000, size, status)
        )
        return text, status


async def clients_main(args: argparse.Namespace) -> None:
    """``--client``: run the clients, print one JSON document."""
    import aiohttp

    t0 = time.monotonic()
    clients = [Client(i) for i in range(args.clients)]
    sessions = [
        aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=1, force_close=False),
            headers={"User-Agent": f"hls-load/{i} (hls.js-like)"},
            timeout=aiohttp.ClientTimeout(total=60),
        )
        for i in range(args.clients)
    ]

    async def one(client: Client, session: Any) -> None:
        await asyncio.sleep(client.index * args.ramp / max(1, args.clients))
        run = client.run_ll if args.ll else client.run
        await run(session, args.base, args.playlist, t0, args.end)

    try:
        await asyncio.gather(
            *(one(c, s) for c, s in zip(clients, sessions, strict=True))
        )
    finally:
        for session in sessions:
            await session.close()
    json.dump(
        {
            "requests": [r for c in clients for r in c.requests],
            "missed": [c.missed for c in clients],
        },
        sys.stdout,
    )


# ------------------------------------------------------------------- the driver


@dataclass(slots=True)
class HlsLoad:
    """What the clients saw in the window, and what Home Assistant spent on them."""

    clients: int
    ll: bool = False  # low-latency clients (parts and blocking reloads)
    cpu: float = math.nan  # cores over the window, idle taken out
    playlist_ms: list[float] = field(default_factory=list)
    segment_ms: list[float] = field(default_factory=list)
    segment_bytes: int = 0
    failed: int = 0
    missed: int = 0
    window: float = math.nan
    error: str | None = None


async def run_hls_load(
    bench: Any,
    hass: Any,
    clients: int,
    *,
    ramp: float,
    settle: float,
    window: float,
    warmup: float,
    ll: bool = False,
) -> HlsLoad:
    """One broadcast (warm), ``clients`` hls.js-like clients; CPU over the window."""
    result = HlsLoad(clients, ll=ll, window=window)
    target = await hass.open_broadcast(warmup)
    playlist = target.path.replace("/stream/", "/hls/") + "/index.m3u8"
    (signed,) = await hass.api.websocket(
        {"type": "auth/sign_path", "path": playlist, "expires": 3600}
    )
    mark = ramp + settle
    proc = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--client", "--base", hass.url,
        "--playlist", signed["path"], "--clients", str(clients),
        "--ramp", f"{ramp:g}", "--end", f"{mark + window:g}",
        *(["--ll"] if ll else []),
        stdout=asyncio.subprocess.PIPE,
        preexec_fn=lambda: bench._pin(bench.CLIENT_CORE),
    )  # fmt: skip
    try:
        started = time.monotonic()
        await asyncio.sleep(mark)
        cpu0, t0 = bench.proc_cpu(hass.pid), time.monotonic()
        await asyncio.sleep(max(0.0, started + mark + window - time.monotonic()))
        cpu1, t1 = bench.proc_cpu(hass.pid), time.monotonic()
        out, _ = await asyncio.wait_for(proc.communicate(), 120)
    except Exception as err:  # the other rows go on
        result.error = f"{type(err).__name__}: {err}"
        return result
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await hass.stop_broadcast(target)
    idle = 0.0 if math.isnan(hass.idle) else hass.idle
    result.cpu = (cpu1 - cpu0) / (t1 - t0) - idle
    report = json.loads(out)
    result.missed = sum(report["missed"])
    for kind, at, ms, size, status in report["requests"]:
        if status != 200:
            result.failed += 1
        elif at >= mark:
            if kind == "playlist":
                result.playlist_ms.append(ms)
            else:
                result.segment_ms.append(ms)
                result.segment_bytes += size
    return result


def render(
    bench: Any,
    ts: Any,
    loads: list[HlsLoad],
    source_kbps: float,
    window: float,
) -> list[str]:
    """The HLS rows (plain, low-latency) against the TS row."""
    pct = bench.pct
    n = loads[0].clients

    def millis(cores: float, count: int) -> str:
        return "-" if math.isnan(cores) else f"{cores * 1000 / count:.2f}"

    ts_ok = ts is not None and not ts.error
    lines = [
        f"HLS at scale: {n} hls.js-like clients (each: its own connection, reloads "
        "the playlist every target duration, fetches each new segment once), and "
        f"{n} like hls.js in low-latency mode (a blocking reload for the hinted part, "
        f"then each new part once), against {n} MPEG-TS viewers, each on a fresh "
        "warm broadcast of this source through the same Home Assistant; CPU over a "
        f"{window:g} s window after the joins, net of idle; request times from "
        "sending to the last body byte (a blocking reload's include its wait for "
        "the part).",
        "",
        "| clients | CPU cores | millicores per client | delivered, % of the source "
        "rate per client | requests p50 / p99 |",
        "|---|---|---|---|---|",
    ]
    if ts_ok:
        rates = ts.rates or [math.nan]
        lines.append(
            f"| {n} MPEG-TS viewers | {ts.cpu:.3f} | {millis(ts.cpu, n)} "
            f"| slowest {min(rates) / source_kbps:.1%}, median "
            f"{statistics.median(rates) / source_kbps:.1%}; {ts.failed} failed "
            f"| join (first byte) {pct(ts.ttfb, 50):.0f} / {pct(ts.ttfb, 99):.0f} ms |"
        )
    else:
        lines.append(f"| {n} MPEG-TS viewers | {ts.error if ts else '-'} | | | |")
    for hls in loads:
        name = "LL-HLS clients" if hls.ll else "HLS clients"
        piece = "part" if hls.ll else "segment"
        if hls.error:
            lines.append(f"| {n} {name} | {hls.error} | | | |")
            continue
        per_client = hls.segment_bytes * 8 / 1000 / window / n
        reload = "blocking reload" if hls.ll else "playlist"
        lines.append(
            f"| {n} {name} | {hls.cpu:.3f} | {millis(hls.cpu, n)} "
            f"| {per_client / source_kbps:.1%} on average; {hls.missed} {piece}s "
            f"missed, {hls.failed} requests failed "
            f"| {reload} {pct(hls.playlist_ms, 50):.0f} / "
            f"{pct(hls.playlist_ms, 99):.0f} ms ({len(hls.playlist_ms)}), {piece} "
            f"{pct(hls.segment_ms, 50):.0f} / {pct(hls.segment_ms, 99):.0f} ms "
            f"({len(hls.segment_ms)}) |"
        )
    return lines


def main() -> int:
    """``--client`` (internal): the clients' process."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--client", action="store_true", required=True)
    parser.add_argument("--base", required=True)
    parser.add_argument("--playlist", required=True)
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--ramp", type=float, default=2.0)
    parser.add_argument("--end", type=float, default=20.0)
    parser.add_argument("--ll", action="store_true", help="low-latency clients")
    asyncio.run(clients_main(parser.parse_args()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
