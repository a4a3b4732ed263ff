"""Run the AceStream Proxy demo: Home Assistant + the engine simulator.

What it does, from a fresh clone with no prior state:

1. starts the AceStream engine simulator (``python -m tests.simulator``);
2. creates a throwaway Home Assistant configuration in ``.demo/config`` (wiped at
   every start) with ``custom_components/acestream_proxy`` symlinked into it;
3. starts Home Assistant on 127.0.0.1, completes onboarding through its HTTP API
   (user ``demo`` / ``demo-demo-1234``) and adds the ``acestream_proxy`` config
   entry pointing at the simulator, through the config flow API;
4. prints the URLs and a ready-to-play signed stream URL, then runs until
   Ctrl-C, which stops Home Assistant and the simulator.

``--check`` brings everything up, verifies the config entry is loaded and that the
stream URL delivers MPEG-TS, prints the URLs, shuts everything down and exits 0
(non-zero on any failure): a smoke test for CI.

Run it with the project venv (``make demo`` does; ``make demo-newest`` runs it on
the newest release): it needs Home Assistant and aiohttp. Home Assistant is started,
onboarded and given its entries by script/harness.py, shared with the soak and the
bench.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
from pathlib import Path
import signal
import sys
import time
from typing import Any

import aiohttp

# Run as script/demo.py: its folder is on sys.path.
from harness import (
    DOMAIN,
    PASSWORD,
    ROOT,
    USER,
    Child,
    HarnessError,
    HassProcess,
    HomeAssistantApi,
    log,
    pick_port,
    simulator_child,
    wait_http,
)

DEFAULT_HA_PORT = 8123
DEFAULT_SIM_PORT = 6878
SIGNED_URL_LIFETIME = 24 * 3600

# Components beyond what the integration itself pulls in. default_config is
# avoided on purpose: it brings bluetooth, zeroconf, cloud, go2rtc, stream...
# that need hardware, network access or extra binaries.
COMPONENTS = (
    "frontend",
    "config",
    "history",
    "logbook",
    "automation",
    "script",
    # Demo media players (and the rest of HA's demo) to try acestream_proxy.play.
    "demo",
)
CHANNELS = (
    ("Demo Sports", hashlib.sha1(b"acestream-proxy demo sports").hexdigest(), "Sports"),
    ("Demo News", hashlib.sha1(b"acestream-proxy demo news").hexdigest(), "News"),
)

TS_PACKET = 188
TS_SYNC = 0x47

SIM_START_TIMEOUT = 30.0
STREAM_TIMEOUT = 45.0
STREAM_CHECK_BYTES = TS_PACKET * 200


# Children started so far, for the signal handler; set once startup is over.
CHILDREN: list[Child] = []
HASS: list[HassProcess] = []
WAITING = asyncio.Event()


class DemoError(HarnessError):
    """A step of the demo failed; the message says which."""


async def check_stream(session: aiohttp.ClientSession, url: str) -> str:
    """Read the start of a stream URL; return a one-line verdict or raise."""
    started = time.monotonic()
    received = bytearray()
    try:
        async with session.get(
            url, timeout=aiohttp.ClientTimeout(total=STREAM_TIMEOUT)
        ) as resp:
            if resp.status != 200:
                body = (await resp.text())[:300]
                raise DemoError(f"stream answered HTTP {resp.status}: {body}")
            content_type = resp.headers.get("Content-Type", "?")
            async for chunk in resp.content.iter_any():
                received += chunk
                if len(received) >= STREAM_CHECK_BYTES:
                    break
    except TimeoutError as err:
        raise DemoError(
            f"stream gave {len(received)} bytes in {STREAM_TIMEOUT:.0f} s"
        ) from err
    if len(received) < STREAM_CHECK_BYTES:
        raise DemoError(f"stream ended after {len(received)} bytes")
    elapsed = time.monotonic() - started
    packets = len(received) // TS_PACKET
    aligned = all(received[i * TS_PACKET] == TS_SYNC for i in range(packets))
    if not aligned:
        raise DemoError("stream bytes are not 188-byte aligned MPEG-TS")
    return (
        f"{len(received)} bytes of 188-byte aligned MPEG-TS ({content_type}) "
        f"after {elapsed:.1f} s, engine cold start included"
    )


async def verify(
    session: aiohttp.ClientSession, signed_url: str, hls_url: str, playlist_url: str
) -> None:
    """--check: the TS stream, the HLS playlist and the M3U all answer."""
    log("reading the signed stream URL")
    log(f"stream OK: {await check_stream(session, signed_url)}")
    log("reading the signed HLS playlist and the M3U")
    async with session.get(hls_url) as resp:
        text = await resp.text()
        if resp.status != 200 or "#EXTINF" not in text:
            raise DemoError(f"HLS playlist: HTTP {resp.status}: {text[:200]}")
    async with session.get(playlist_url) as resp:
        m3u = await resp.text()
        if resp.status != 200 or m3u.count("#EXTINF") != len(CHANNELS):
            raise DemoError(f"M3U playlist: HTTP {resp.status}: {m3u[:200]}")
    log("HLS and M3U OK")


# ------------------------------------------------------------------------ main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(
        description="Home Assistant + AceStream engine simulator with the "
        "acestream_proxy integration set up."
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="bring everything up, verify it works, shut down, exit 0/1",
    )
    parser.add_argument(
        "--ha-port",
        type=int,
        default=DEFAULT_HA_PORT,
        help="Home Assistant port (default %(default)s, another if taken)",
    )
    parser.add_argument(
        "--sim-port",
        type=int,
        default=DEFAULT_SIM_PORT,
        help="simulator port (default %(default)s, another if taken)",
    )
    parser.add_argument(
        "--engines",
        type=int,
        default=2,
        choices=(1, 2, 3),
        help="engine simulators to run, each its own entry (default %(default)s)",
    )
    parser.add_argument(
        "--cold-start",
        type=float,
        default=3.0,
        help="simulated engine cold start, seconds (default %(default)s)",
    )
    parser.add_argument(
        "--demo-dir",
        type=Path,
        default=ROOT / ".demo",
        help="state folder, wiped at start (default %(default)s)",
    )
    parser.add_argument(
        "--verbose",
        action="store_true",
        help="show Home Assistant's and the simulator's output here",
    )
    return parser.parse_args(argv)


def print_summary(info: dict[str, str]) -> None:
    """Print the URLs and credentials."""
    width = max(len(key) for key in info)
    bar = "=" * 78
    print(bar)
    for key, value in info.items():
        print(f"{key.rjust(width)}  {value}")
    print(bar, flush=True)


async def set_up(api: HomeAssistantApi, sim_ports: list[int]) -> list[str]:
    """An entry per engine, as a user adds it; the channels on the first."""
    if removed := await api.remove_failed_entries():
        log(f"removed onboarding defaults that need internet: {removed}")
    entry_ids = []
    for port in sim_ports:
        log(f"adding the AceStream Proxy entry for the engine on port {port}")
        entry_id, how = await api.add_entry("127.0.0.1", port)
        entry = await api.wait_entry_loaded(entry_id)
        log(f"config entry '{entry['title']}' is {entry['state']} ({how})")
        entry_ids.append(entry_id)
    for name, content_id, group in CHANNELS:
        await api.add_channel(entry_ids[0], name, content_id, group)
    log(f"added channels: {', '.join(name for name, _, _ in CHANNELS)}")
    return entry_ids


async def run(args: argparse.Namespace, stop: asyncio.Event) -> int:
    """Bring everything up; in --check mode verify and return, else wait."""
    demo_dir: Path = args.demo_dir.resolve()
    config_dir = demo_dir / "config"
    taken: set[int] = set()
    sim_ports: list[int] = []
    for index in range(args.engines):
        sim_ports.append(pick_port(args.sim_port + index, taken))
        taken.add(sim_ports[-1])
    hass = HassProcess(
        config_dir,
        name="AceStream Proxy demo",
        port=pick_port(args.ha_port, taken),
        components=COMPONENTS,
        logs={"homeassistant.components.http.ban": "warning"},
        verbose=args.verbose,
    )
    sims = [
        simulator_child(
            index + 1,
            port,
            str(args.cold_start),
            demo_dir / f"simulator-{index + 1}.log",
        )
        for index, port in enumerate(sim_ports)
    ]
    CHILDREN.extend(sims)
    HASS.append(hass)
    try:
        for sim, port in zip(sims, sim_ports, strict=True):
            log(f"starting {sim.name} on http://127.0.0.1:{port}")
            await sim.start(verbose=args.verbose)
        log(f"starting Home Assistant (config: {config_dir}) and onboarding it")
        await hass.start()
        ha_url = hass.url
        api = hass.api
        log(f"Home Assistant runs on {ha_url}")
        session = api.session
        for sim, port in zip(sims, sim_ports, strict=True):
            await wait_http(
                session,
                f"http://127.0.0.1:{port}/webui/api/service?method=get_version",
                SIM_START_TIMEOUT,
                sim.check_alive,
            )
        log("engine simulators are up")
        entry_ids = await set_up(api, sim_ports)

        channel_id = CHANNELS[0][1]
        stream_path = f"/api/{DOMAIN}/stream/{channel_id}"
        hls_path = f"/api/{DOMAIN}/hls/{channel_id}/index.m3u8"
        signed, signed_hls, token, playlist = await api.websocket(
            {
                "type": "auth/sign_path",
                "path": stream_path,
                "expires": SIGNED_URL_LIFETIME,
            },
            {
                "type": "auth/sign_path",
                "path": hls_path,
                "expires": SIGNED_URL_LIFETIME,
            },
            {
                "type": "auth/long_lived_access_token",
                "client_name": "AceStream Proxy demo",
                "lifespan": 30,
            },
            {
                "type": "call_service",
                "domain": DOMAIN,
                "service": "playlist_url",
                "service_data": {"days": 1},
                "return_response": True,
            },
        )
        signed_url = f"{ha_url}{signed['path']}"
        hls_url = f"{ha_url}{signed_hls['path']}"
        playlist_url = str(playlist["response"]["url"])
        entities = await api.entity_states(entry_ids[0])

        if args.check:
            await verify(session, signed_url, hls_url, playlist_url)

        info = {
            "Home Assistant": ha_url,
            "login": f"{USER} / {PASSWORD}",
            "engine simulators": ", ".join(f"http://127.0.0.1:{p}" for p in sim_ports),
            "channels": ", ".join(name for name, _, _ in CHANNELS),
            "stream URL": f"{ha_url}{stream_path}",
            "signed (24 h)": signed_url,
            "play it": f"vlc '{signed_url}'",
            "HLS (signed)": hls_url,
            "HLS in a player": f"ffplay '{hls_url}'",
            "M3U for IPTV apps": f"vlc '{playlist_url}'",
            "API token": f"curl -H 'Authorization: Bearer {token}' "
            f"{ha_url}{stream_path} | ffprobe -",
            "cast it": "Developer tools > Actions > AceStream Proxy: Play, "
            "media player media_player.living_room, channel Demo Sports",
            "failover": "while a channel plays, stop the engine serving it, e.g. "
            f"pkill -f 'tests.simulator --host 127.0.0.1 --port {sim_ports[0]}' "
            "(the first broadcast goes to the first engine): it moves to the other "
            "engine, the player keeps going, and Developer tools > Events shows "
            "acestream_proxy_event stream_failover",
            "entities": ", ".join(f"{eid}={state}" for eid, state in entities)
            or "(none)",
            "logs": f"{config_dir / 'home-assistant.log'}, {demo_dir}/simulator-*.log",
        }
        print_summary(info)
        if args.check:
            log("check passed; shutting down")
            return 0

        log("running; press Ctrl-C to stop")
        WAITING.set()
        waiters: list[asyncio.Future[Any]] = [asyncio.ensure_future(stop.wait())]
        if hass.child is not None and hass.child.proc is not None:
            waiters.append(asyncio.ensure_future(hass.child.proc.wait()))
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
        if hass.child is not None:
            hass.child.check_alive()
        return 0
    finally:
        log("stopping Home Assistant and the engine simulators")
        await asyncio.gather(hass.stop(), *(sim.stop(grace=10) for sim in sims))
        log("stopped")


async def amain(args: argparse.Namespace) -> int:
    """Run with signal handling: first Ctrl-C stops cleanly, second kills."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    inner = asyncio.ensure_future(run(args, stop))

    def on_signal() -> None:
        if stop.is_set():
            log("second interrupt: killing the child processes")
            for child in (*CHILDREN, *(h.child for h in HASS if h.child)):
                child.kill_group(signal.SIGKILL)
            return
        stop.set()
        if not WAITING.is_set():
            # Still starting up: abandon that; run()'s cleanup still runs.
            inner.cancel()

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, on_signal)
    try:
        return await inner
    except asyncio.CancelledError:
        log("interrupted")
        return 0


def main() -> None:
    """Entry point."""
    args = parse_args()
    try:
        import homeassistant  # noqa: F401
    except ImportError:
        sys.exit(
            "Home Assistant is not importable by this Python; run `make demo` "
            "(it uses .venv) or .venv/bin/python script/demo.py"
        )
    try:
        code = asyncio.run(amain(args))
    except HarnessError as err:
        print(f"[demo] FAILED: {err}", file=sys.stderr, flush=True)
        code = 1
    except (aiohttp.ClientError, OSError) as err:
        print(f"[demo] FAILED: {err!r}", file=sys.stderr, flush=True)
        code = 1
    sys.exit(code)


if __name__ == "__main__":
    main()
