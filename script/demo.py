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

Run it with the project venv (``make demo`` does): it needs Home Assistant and
aiohttp, and uses nothing else outside the standard library. Requirements of the
Home Assistant components it enables (the frontend package) are pip-installed into
that venv on first use; Home Assistant itself runs with ``--skip-pip``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import hashlib
import importlib.metadata
import json
import os
from pathlib import Path
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
INTEGRATION = ROOT / "custom_components" / "acestream_proxy"
DOMAIN = "acestream_proxy"

DEMO_NAME = "Demo User"
DEMO_USER = "demo"
DEMO_PASSWORD = "demo-demo-1234"  # throwaway local demo account
DEFAULT_HA_PORT = 8123
DEFAULT_SIM_PORT = 6878
SIGNED_URL_LIFETIME = 24 * 3600

# Components beyond what the integration itself pulls in. default_config is
# avoided on purpose: it brings bluetooth, zeroconf, cloud, go2rtc, stream...
# that need hardware, network access or extra binaries.
COMPONENTS = (
    "frontend",
    "config",
    "logger",
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

HA_START_TIMEOUT = 300.0
SIM_START_TIMEOUT = 30.0
ENTRY_LOAD_TIMEOUT = 60.0
STREAM_TIMEOUT = 45.0
STREAM_CHECK_BYTES = TS_PACKET * 200


# Children started so far, for the signal handler; set once startup is over.
CHILDREN: list[Child] = []
WAITING = asyncio.Event()


class DemoError(Exception):
    """A step of the demo failed; the message says which."""


def log(message: str) -> None:
    """Print a progress line."""
    print(f"[demo] {message}", flush=True)


# --------------------------------------------------------------------- helpers


def port_is_free(port: int) -> bool:
    """Return True if 127.0.0.1:port can be bound."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def pick_port(preferred: int, taken: set[int]) -> int:
    """Return preferred if free, else a free ephemeral port."""
    if preferred and preferred not in taken and port_is_free(preferred):
        return preferred
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
        if port not in taken:
            return port


def _die_with_parent() -> None:
    """Ask Linux to SIGTERM this child if the demo process dies (prctl)."""
    pr_set_pdeathsig = 1
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)


def _requirement_ok(requirement: str) -> bool:
    """Return True if a pinned 'name==version' requirement is installed."""
    name, _, version = requirement.partition("==")
    name = re.split(r"[\[<>=!~; ]", name, maxsplit=1)[0]
    try:
        installed = importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return False
    return not version or installed == version.strip()


def _manifest(domain: str) -> dict[str, Any]:
    if domain == DOMAIN:
        path = INTEGRATION / "manifest.json"
    else:
        import homeassistant.components

        path = Path(homeassistant.components.__path__[0]) / domain / "manifest.json"
    if not path.is_file():
        return {}
    manifest: dict[str, Any] = json.loads(path.read_text())
    return manifest


def ensure_requirements(domains: tuple[str, ...]) -> None:
    """Pip-install what the enabled components need but the venv lacks.

    Home Assistant runs with --skip-pip, so nothing is installed behind our back;
    in practice this is only the frontend package, on the first run.
    """
    seen: set[str] = set()
    todo = list(domains)
    missing: list[str] = []
    while todo:
        domain = todo.pop()
        if domain in seen:
            continue
        seen.add(domain)
        manifest = _manifest(domain)
        todo.extend(manifest.get("dependencies", []))
        missing.extend(
            req for req in manifest.get("requirements", []) if not _requirement_ok(req)
        )
    if not missing:
        return
    log(f"installing Home Assistant component requirements: {' '.join(missing)}")
    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", *missing],
        check=False,
        capture_output=True,
        text=True,
    )
    for line in (result.stdout + result.stderr).splitlines():
        # This machine's pip config names local file:// indexes; pip warns about
        # each package they lack. Everything else is worth showing.
        if "is ignored: it is neither a file nor a directory" not in line:
            print(line, file=sys.stderr)
    if result.returncode:
        raise DemoError(f"pip install {' '.join(missing)} failed")


def write_config(config_dir: Path, ha_port: int) -> None:
    """Create a fresh Home Assistant configuration directory."""
    if config_dir.exists():
        shutil.rmtree(config_dir)
    custom = config_dir / "custom_components"
    custom.mkdir(parents=True)
    (custom / DOMAIN).symlink_to(INTEGRATION, target_is_directory=True)
    components = "\n".join(f"{name}:" for name in COMPONENTS if name != "logger")
    (config_dir / "configuration.yaml").write_text(
        f"""\
# Written by script/demo.py; this folder is wiped at every start.
homeassistant:
  name: AceStream Proxy demo
  unit_system: metric
  time_zone: UTC
  country: NL
  currency: EUR
  internal_url: "http://127.0.0.1:{ha_port}"

http:
  server_host: 127.0.0.1
  server_port: {ha_port}

logger:
  default: warning
  logs:
    custom_components.{DOMAIN}: info
    homeassistant.components.http.ban: warning

{components}
"""
    )


# ------------------------------------------------------------------- processes


class Child:
    """A child process in its own process group, output going to a log file."""

    def __init__(self, name: str, args: list[str], cwd: Path, log_path: Path) -> None:
        """Remember how to start it."""
        self.name = name
        self.args = args
        self.cwd = cwd
        self.log_path = log_path
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self, *, verbose: bool) -> None:
        """Start the process."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        out: Any = None if verbose else self.log_path.open("wb")
        try:
            self.proc = await asyncio.create_subprocess_exec(
                *self.args,
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT if out is not None else None,
                start_new_session=True,  # Ctrl-C reaches us only; we stop it.
                preexec_fn=_die_with_parent,
            )
        finally:
            if out is not None:
                out.close()

    @property
    def running(self) -> bool:
        """Return True while the process runs."""
        return self.proc is not None and self.proc.returncode is None

    def kill_group(self, sig: signal.Signals) -> None:
        """Send sig to the child's whole process group."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, sig)

    async def stop(self, grace: float) -> None:
        """SIGTERM, wait up to grace seconds, then SIGKILL the process group."""
        if self.proc is None:
            return
        if self.proc.returncode is None:
            self.kill_group(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), grace)
            except TimeoutError:
                log(f"{self.name} did not stop within {grace:.0f} s; killing it")
        # Leftover grandchildren, if any, go too.
        self.kill_group(signal.SIGKILL)
        await self.proc.wait()

    def tail(self, lines: int = 30) -> str:
        """Return the end of the log file."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def check_alive(self) -> None:
        """Raise DemoError if the process has exited."""
        if self.proc is not None and self.proc.returncode is not None:
            raise DemoError(
                f"{self.name} exited with code {self.proc.returncode}; "
                f"end of {self.log_path}:\n{self.tail()}"
            )


async def wait_http(
    session: aiohttp.ClientSession,
    url: str,
    child: Child,
    within: float,
    ok: tuple[int, ...] = (200,),
) -> None:
    """Poll url until it answers with one of the ok statuses."""
    deadline = time.monotonic() + within
    while True:
        child.check_alive()
        with contextlib.suppress(aiohttp.ClientError, TimeoutError):
            async with session.get(url, timeout=aiohttp.ClientTimeout(total=5)) as resp:
                if resp.status in ok:
                    return
        if time.monotonic() > deadline:
            raise DemoError(f"{child.name} did not answer {url} within {within:.0f} s")
        await asyncio.sleep(0.5)


# ------------------------------------------------------------- Home Assistant


class HomeAssistantApi:
    """The bits of Home Assistant's HTTP and websocket API the demo uses."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str) -> None:
        """Talk to Home Assistant at base_url."""
        self.session = session
        self.base_url = base_url
        self.client_id = f"{base_url}/"
        self.access_token = ""
        self._ws_id = 0

    @property
    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}

    async def _request(
        self, method: str, path: str, *, auth: bool = True, **kwargs: Any
    ) -> Any:
        headers = self._headers if auth else {}
        async with self.session.request(
            method, f"{self.base_url}{path}", headers=headers, **kwargs
        ) as resp:
            text = await resp.text()
            if resp.status >= 400:
                raise DemoError(f"{method} {path} -> HTTP {resp.status}: {text}")
            return json.loads(text) if text else None

    async def onboard(self) -> None:
        """Run all onboarding steps; leaves an access token in self."""
        steps = await self._request("GET", "/api/onboarding", auth=False)
        pending = [step["step"] for step in steps if not step["done"]]
        if "user" not in pending:
            raise DemoError(f"onboarding already started here: {steps}")
        result = await self._request(
            "POST",
            "/api/onboarding/users",
            auth=False,
            json={
                "client_id": self.client_id,
                "name": DEMO_NAME,
                "username": DEMO_USER,
                "password": DEMO_PASSWORD,
                "language": "en",
            },
        )
        tokens = await self._request(
            "POST",
            "/auth/token",
            auth=False,
            data={
                "grant_type": "authorization_code",
                "code": result["auth_code"],
                "client_id": self.client_id,
            },
        )
        self.access_token = tokens["access_token"]
        # What the frontend's onboarding wizard sends, in its order.
        if "core_config" in pending:
            await self._request("POST", "/api/onboarding/core_config", json={})
        if "analytics" in pending:
            await self._request("POST", "/api/onboarding/analytics", json={})
        if "integration" in pending:
            await self._request(
                "POST",
                "/api/onboarding/integration",
                json={
                    "client_id": self.client_id,
                    "redirect_uri": f"{self.base_url}/?auth_callback=1",
                },
            )

    async def wait_running(self, child: Child, within: float) -> None:
        """Wait until Home Assistant reports it has finished starting."""
        deadline = time.monotonic() + within
        while True:
            child.check_alive()
            config = await self._request("GET", "/api/config")
            if config.get("state") == "RUNNING":
                return
            if time.monotonic() > deadline:
                raise DemoError(f"Home Assistant still {config.get('state')}")
            await asyncio.sleep(0.5)

    async def remove_failed_entries(self) -> list[str]:
        """Delete config entries that failed to set up; return their domains.

        Onboarding's core_config step starts flows for a few default
        integrations (met, radio_browser, google_translate...) that need
        internet access or packages the demo does not install. Their failures
        are logged; removing the broken entries keeps the UI clean.
        """
        deadline = time.monotonic() + 15
        while True:
            entries = await self._request("GET", "/api/config/config_entries/entry")
            settling = [e for e in entries if e["state"] == "setup_in_progress"]
            if not settling or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
        removed = []
        for entry in entries:
            if entry["domain"] != DOMAIN and entry["state"] in (
                "setup_error",
                "setup_retry",
                "migration_error",
            ):
                await self._request(
                    "DELETE", f"/api/config/config_entries/entry/{entry['entry_id']}"
                )
                removed.append(entry["domain"])
        return removed

    async def add_entry(self, host: str, port: int) -> tuple[str, str]:
        """Add an engine through the config flow as a user does; return the entry
        id and how it was chosen.

        The first form lists the engines the integration found around here: pick
        this one when it is listed, else choose to type an address and enter it.
        """
        base = "/api/config/config_entries/flow"
        result = await self._request(
            "POST", base, json={"handler": DOMAIN, "show_advanced_options": False}
        )
        how = "entered its address"
        if result.get("type") == "form" and result.get("step_id") == "user":
            offered = select_options(result, "engine")
            wanted = f"{host.lower()}:{port}"
            choice = wanted if wanted in offered else "manual"
            if choice not in offered:
                raise DemoError(
                    f"config flow offers neither engine nor manual: {result}"
                )
            if choice != "manual":
                how = "picked it among the engines found"
            result = await self._request(
                "POST", f"{base}/{result['flow_id']}", json={"engine": choice}
            )
        if result.get("type") == "form" and result.get("step_id") == "manual":
            result = await self._request(
                "POST", f"{base}/{result['flow_id']}", json={"host": host, "port": port}
            )
        if result.get("type") != "create_entry":
            raise DemoError(f"config flow did not create an entry: {result}")
        entry_id: str = result["result"]["entry_id"]
        return entry_id, how

    async def add_channel(
        self, entry_id: str, name: str, content: str, group: str
    ) -> None:
        """Add a channel (a config subentry) through its flow."""
        flow = await self._request(
            "POST",
            "/api/config/config_entries/subentries/flow",
            json={"handler": [entry_id, "channel"], "show_advanced_options": False},
        )
        result = await self._request(
            "POST",
            f"/api/config/config_entries/subentries/flow/{flow['flow_id']}",
            json={
                "name": name,
                "content": content,
                "kind": "content_id",
                "group": group,
            },
        )
        if result.get("type") != "create_entry":
            raise DemoError(f"channel flow did not create a channel: {result}")

    async def wait_entry_loaded(self, entry_id: str, within: float) -> dict[str, Any]:
        """Wait for the entry to reach state 'loaded'; return it."""
        deadline = time.monotonic() + within
        while True:
            entries = await self._request(
                "GET", f"/api/config/config_entries/entry?domain={DOMAIN}"
            )
            entry = next((e for e in entries if e["entry_id"] == entry_id), None)
            if entry is None:
                raise DemoError(f"config entry {entry_id} disappeared")
            if entry["state"] == "loaded":
                return dict(entry)
            if entry["state"] in ("setup_error", "migration_error", "failed_unload"):
                raise DemoError(f"config entry failed: {entry}")
            if time.monotonic() > deadline:
                raise DemoError(f"config entry not loaded in {within:.0f} s: {entry}")
            await asyncio.sleep(0.5)

    async def websocket(self, *commands: dict[str, Any]) -> list[Any]:
        """Run commands over one websocket connection; return their results."""
        results: list[Any] = []
        async with self.session.ws_connect(f"{self.base_url}/api/websocket") as ws:
            await ws.receive_json()  # auth_required
            await ws.send_json({"type": "auth", "access_token": self.access_token})
            reply = await ws.receive_json()
            if reply.get("type") != "auth_ok":
                raise DemoError(f"websocket auth failed: {reply}")
            for command in commands:
                self._ws_id += 1
                await ws.send_json({"id": self._ws_id, **command})
                while True:
                    reply = await ws.receive_json()
                    if reply.get("id") == self._ws_id and reply["type"] == "result":
                        break
                if not reply.get("success"):
                    raise DemoError(f"websocket {command['type']}: {reply}")
                results.append(reply.get("result"))
        return results

    async def entity_states(self, entry_id: str) -> list[tuple[str, str]]:
        """Return (entity_id, state) for the entities of a config entry."""
        (registry,) = await self.websocket({"type": "config/entity_registry/list"})
        ids = sorted(
            item["entity_id"]
            for item in registry
            if item.get("config_entry_id") == entry_id
        )
        states = {
            item["entity_id"]: item["state"]
            for item in await self._request("GET", "/api/states")
        }
        return [(entity_id, states.get(entity_id, "?")) for entity_id in ids]


def select_options(form: dict[str, Any], name: str) -> list[str]:
    """The values a form's select field offers (as the REST API serializes it)."""
    for field in form.get("data_schema") or []:
        if field.get("name") == name:
            options = field.get("selector", {}).get("select", {}).get("options", [])
            return [str(o["value"] if isinstance(o, dict) else o) for o in options]
    return []


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


async def run(args: argparse.Namespace, stop: asyncio.Event) -> int:
    """Bring everything up; in --check mode verify and return, else wait."""
    demo_dir: Path = args.demo_dir.resolve()
    config_dir = demo_dir / "config"
    taken: set[int] = set()
    sim_ports: list[int] = []
    for index in range(args.engines):
        sim_ports.append(pick_port(args.sim_port + index, taken))
        taken.add(sim_ports[-1])
    ha_port = pick_port(args.ha_port, taken)
    ha_url = f"http://127.0.0.1:{ha_port}"

    ensure_requirements((*COMPONENTS, DOMAIN))
    write_config(config_dir, ha_port)

    sims = [
        Child(
            f"engine simulator {index + 1}",
            [
                sys.executable,
                "-m",
                "tests.simulator",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--cold-start",
                str(args.cold_start),
            ],
            cwd=ROOT,
            log_path=demo_dir / f"simulator-{index + 1}.log",
        )
        for index, port in enumerate(sim_ports)
    ]
    # cwd is the demo folder, not the repo: the repo's custom_components package
    # must not shadow the config folder's one.
    hass = Child(
        "Home Assistant",
        [sys.executable, "-m", "homeassistant", "-c", str(config_dir), "--skip-pip"],
        cwd=demo_dir,
        log_path=demo_dir / "hass-console.log",
    )
    children = (hass, *sims)
    CHILDREN.extend(children)
    try:
        for sim, port in zip(sims, sim_ports, strict=True):
            log(f"starting {sim.name} on http://127.0.0.1:{port}")
            await sim.start(verbose=args.verbose)
        log(f"starting Home Assistant on {ha_url} (config: {config_dir})")
        await hass.start(verbose=args.verbose)

        async with aiohttp.ClientSession() as session:
            for sim, port in zip(sims, sim_ports, strict=True):
                await wait_http(
                    session,
                    f"http://127.0.0.1:{port}/webui/api/service?method=get_version",
                    sim,
                    SIM_START_TIMEOUT,
                )
            log("engine simulators are up")
            await wait_http(session, f"{ha_url}/api/onboarding", hass, HA_START_TIMEOUT)
            api = HomeAssistantApi(session, ha_url)
            log("onboarding (creating the demo user)")
            await api.onboard()
            await api.wait_running(hass, HA_START_TIMEOUT)
            if removed := await api.remove_failed_entries():
                log(f"removed onboarding defaults that need internet: {removed}")
            entry_ids = []
            for port in sim_ports:
                log(f"adding the AceStream Proxy entry for the engine on port {port}")
                entry_id, how = await api.add_entry("127.0.0.1", port)
                entry = await api.wait_entry_loaded(entry_id, ENTRY_LOAD_TIMEOUT)
                log(f"config entry '{entry['title']}' is {entry['state']} ({how})")
                entry_ids.append(entry_id)
            for name, content_id, group in CHANNELS:
                await api.add_channel(entry_ids[0], name, content_id, group)
            log(f"added channels: {', '.join(name for name, _, _ in CHANNELS)}")

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
            "login": f"{DEMO_USER} / {DEMO_PASSWORD}",
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
        waiters += [
            asyncio.ensure_future(hass.proc.wait())
            for _ in (1,)
            if hass.proc is not None
        ]
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
        hass.check_alive()
        return 0
    finally:
        log("stopping Home Assistant and the engine simulators")
        await asyncio.gather(hass.stop(grace=60), *(sim.stop(grace=10) for sim in sims))
        log("stopped")


async def amain(args: argparse.Namespace) -> int:
    """Run with signal handling: first Ctrl-C stops cleanly, second kills."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    inner = asyncio.ensure_future(run(args, stop))

    def on_signal() -> None:
        if stop.is_set():
            log("second interrupt: killing the child processes")
            for child in CHILDREN:
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
    except DemoError as err:
        print(f"[demo] FAILED: {err}", file=sys.stderr, flush=True)
        code = 1
    except (aiohttp.ClientError, OSError) as err:
        print(f"[demo] FAILED: {err!r}", file=sys.stderr, flush=True)
        code = 1
    sys.exit(code)


if __name__ == "__main__":
    main()
