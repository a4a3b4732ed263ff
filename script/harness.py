"""Home Assistant for the demo, the soak, the bench and the real-hass check.

One way to start Home Assistant, onboard it and set up the integration, so the
scripts under ``script/`` never drift apart:

- ``HassProcess``: a real ``python -m homeassistant -c DIR --skip-pip`` process
  (demo, bench, check), optionally behind a command prefix such as ``taskset``;
- ``HassInProcess``: ``homeassistant.bootstrap`` in this process, exactly as the
  ``hass`` command sets it up, so the caller can look at its tasks and timers (soak).

Either one writes a throwaway configuration folder with the integration symlinked
in, installs what Home Assistant's default integrations need (it runs with
``--skip-pip``), waits for the HTTP API, onboards a user through it as the
frontend's wizard does and waits until Home Assistant runs. ``HomeAssistantApi``
then adds engines, channels and options through the real config flows, over the
same HTTP and WebSocket API the UI uses.

Runs with whatever Python has Home Assistant: the project venv (oldest leg) or the
newest-release venv (``script/newest.sh run``). It uses aiohttp and the standard
library only.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping
import contextlib
import ctypes
import importlib.metadata
import json
import logging
import os
from pathlib import Path
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from types import TracebackType
from typing import Any, Self

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
INTEGRATION = ROOT / "custom_components" / "acestream_proxy"
DOMAIN = "acestream_proxy"

USER_NAME = "Demo User"
USER = "demo"
PASSWORD = "demo-demo-1234"  # throwaway local account
START_TIMEOUT = 300.0
ENTRY_LOAD_TIMEOUT = 60.0


class HarnessError(Exception):
    """A step of bringing Home Assistant up failed; the message says which."""


def log(message: str) -> None:
    """Print a progress line, prefixed with the running script's name."""
    print(f"[{Path(sys.argv[0]).stem}] {message}", flush=True)


# ----------------------------------------------------------------------- ports


def port_is_free(port: int) -> bool:
    """Return True if 127.0.0.1:port can be bound."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def pick_port(preferred: int = 0, taken: Iterable[int] = ()) -> int:
    """Return preferred if free, else a free ephemeral port."""
    taken = set(taken)
    if preferred and preferred not in taken and port_is_free(preferred):
        return preferred
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
        if port not in taken:
            return port


# ---------------------------------------------------------------- requirements


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


# What onboarding's core_config step adds entries for (as the frontend's wizard
# does); without their packages each one logs an error.
ONBOARDING_DOMAINS = ("google_translate", "met", "radio_browser", "shopping_list")


def bootstrap_domains() -> set[str]:
    """What Home Assistant sets up whatever the configuration says: its bootstrap's
    core and default integrations, and what onboarding adds.

    Read from the installed release: the set grows between releases (2026 adds
    brands and labs, and the frontend pulls in more).
    """
    from homeassistant import bootstrap

    return {
        *bootstrap.CORE_INTEGRATIONS,
        *bootstrap.DEFAULT_INTEGRATIONS,
        *ONBOARDING_DOMAINS,
    }


def missing_requirements(domains: Iterable[str]) -> list[str]:
    """The pinned packages of ``domains`` and their dependencies not installed."""
    seen: set[str] = set()
    todo = list(domains)
    missing: list[str] = []
    while todo:
        domain = todo.pop()
        if domain in seen:
            continue
        seen.add(domain)
        manifest = _manifest(domain)
        # after_dependencies too: their modules get imported (analytics imports
        # hassio's client library whether or not a Supervisor runs).
        todo.extend(manifest.get("dependencies", []))
        todo.extend(manifest.get("after_dependencies", []))
        missing.extend(
            req for req in manifest.get("requirements", []) if not _requirement_ok(req)
        )
    return sorted(set(missing))


def ensure_requirements(domains: Iterable[str]) -> None:
    """Pip-install what Home Assistant will set up but this venv lacks.

    Home Assistant runs with --skip-pip, so nothing is installed behind our back:
    in practice this is the frontend's (and on 2026 releases a few more) packages,
    on the first run. Home Assistant's own constraints file keeps pip from moving
    any package it pins.
    """
    missing = missing_requirements({*bootstrap_domains(), *domains, DOMAIN})
    if not missing:
        return
    import homeassistant

    constraints = Path(homeassistant.__file__).parent / "package_constraints.txt"
    log(f"installing Home Assistant component requirements: {' '.join(missing)}")
    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", *missing]
        + (["--constraint", str(constraints)] if constraints.is_file() else []),
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
        raise HarnessError(f"pip install {' '.join(missing)} failed")


# ---------------------------------------------------------------- configuration


def write_config(
    config_dir: Path,
    port: int,
    *,
    name: str,
    components: Iterable[str] = (),
    logs: Mapping[str, str] | None = None,
    custom: Mapping[str, Path] | None = None,
) -> None:
    """Create a fresh configuration folder with the integration symlinked in
    (what was there goes), and ``custom``'s other custom integrations (domain:
    folder), which ``components`` should name to set them up."""
    if config_dir.exists():
        shutil.rmtree(config_dir)
    custom_dir = config_dir / "custom_components"
    custom_dir.mkdir(parents=True)
    (custom_dir / DOMAIN).symlink_to(INTEGRATION, target_is_directory=True)
    for domain, folder in (custom or {}).items():
        (custom_dir / domain).symlink_to(folder.resolve(), target_is_directory=True)
    levels = {f"custom_components.{DOMAIN}": "info", **(logs or {})}
    log_lines = "".join(f"    {key}: {value}\n" for key, value in levels.items())
    extra = "".join(f"{c}:\n" for c in components if c != "logger")
    (config_dir / "configuration.yaml").write_text(
        f"""\
# Written by script/harness.py for {name}; a throwaway folder.
homeassistant:
  name: {name}
  unit_system: metric
  time_zone: UTC
  country: NL
  currency: EUR
  internal_url: "http://127.0.0.1:{port}"

http:
  server_host: 127.0.0.1
  server_port: {port}

logger:
  default: warning
  logs:
{log_lines}
{extra}"""
    )


# ------------------------------------------------------------------- processes


def _die_with_parent() -> None:
    """Ask Linux to SIGTERM this child if the parent dies (prctl)."""
    pr_set_pdeathsig = 1
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)


class Child:
    """A child process in its own process group, output going to a log file."""

    def __init__(self, name: str, args: list[str], cwd: Path, log_path: Path) -> None:
        """Remember how to start it."""
        self.name = name
        self.args = args
        self.cwd = cwd
        self.log_path = log_path
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self, *, verbose: bool = False) -> None:
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
    def pid(self) -> int:
        """The process id."""
        assert self.proc is not None
        return self.proc.pid

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
        """Raise HarnessError if the process has exited."""
        if self.proc is not None and self.proc.returncode is not None:
            raise HarnessError(
                f"{self.name} exited with code {self.proc.returncode}; "
                f"end of {self.log_path}:\n{self.tail()}"
            )


def simulator_child(number: int, port: int, cold_start: str, log_path: Path) -> Child:
    """Engine simulator ``number`` (tests/simulator) as a child process on
    loopback ``port``, with a cold start of ``cold_start`` seconds."""
    return Child(
        f"engine simulator {number}",
        [
            sys.executable, "-m", "tests.simulator", "--host", "127.0.0.1",
            "--port", str(port), "--cold-start", cold_start,
        ],
        cwd=ROOT,
        log_path=log_path,
    )  # fmt: skip


async def wait_http(
    session: aiohttp.ClientSession,
    url: str,
    within: float,
    alive: Callable[[], None] = lambda: None,
) -> None:
    """Poll url until it answers 200; ``alive`` raises when the server died."""
    deadline = time.monotonic() + within
    while True:
        alive()
        with contextlib.suppress(aiohttp.ClientError, TimeoutError):
            async with session.get(url, timeout=aiohttp.ClientTimeout(total=5)) as resp:
                if resp.status == 200:
                    return
        if time.monotonic() > deadline:
            raise HarnessError(f"{url} did not answer within {within:.0f} s")
        await asyncio.sleep(0.5)


# ------------------------------------------------------------------ the API


def select_options(form: Mapping[str, Any], name: str) -> list[str]:
    """The values a form's select field offers (as the REST API serializes it)."""
    for item in form.get("data_schema") or []:
        if item.get("name") == name:
            options = item.get("selector", {}).get("select", {}).get("options", [])
            return [str(o["value"] if isinstance(o, dict) else o) for o in options]
    return []


class HomeAssistantApi:
    """The parts of Home Assistant's HTTP and WebSocket API the scripts use: what
    the frontend sends for the same clicks."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str) -> None:
        """Talk to Home Assistant at base_url."""
        self.session = session
        self.base_url = base_url
        self.client_id = f"{base_url}/"
        self.access_token = ""
        self._ws_id = 0

    @property
    def headers(self) -> dict[str, str]:
        """The bearer header of the onboarded user."""
        return {"Authorization": f"Bearer {self.access_token}"}

    async def request(
        self, method: str, path: str, *, auth: bool = True, **kwargs: Any
    ) -> Any:
        """One REST call; its JSON answer, or HarnessError on HTTP 4xx/5xx."""
        async with self.session.request(
            method,
            f"{self.base_url}{path}",
            headers=self.headers if auth else {},
            **kwargs,
        ) as resp:
            text = await resp.text()
            if resp.status >= 400:
                raise HarnessError(f"{method} {path} -> HTTP {resp.status}: {text}")
            return json.loads(text) if text else None

    async def onboard(self) -> None:
        """Run all onboarding steps; leaves an access token in self."""
        steps = await self.request("GET", "/api/onboarding", auth=False)
        pending = [step["step"] for step in steps if not step["done"]]
        if "user" not in pending:
            raise HarnessError(f"onboarding already started here: {steps}")
        result = await self.request(
            "POST",
            "/api/onboarding/users",
            auth=False,
            json={
                "client_id": self.client_id,
                "name": USER_NAME,
                "username": USER,
                "password": PASSWORD,
                "language": "en",
            },
        )
        tokens = await self.request(
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
            await self.request("POST", "/api/onboarding/core_config", json={})
        if "analytics" in pending:
            await self.request("POST", "/api/onboarding/analytics", json={})
        if "integration" in pending:
            await self.request(
                "POST",
                "/api/onboarding/integration",
                json={
                    "client_id": self.client_id,
                    "redirect_uri": f"{self.base_url}/?auth_callback=1",
                },
            )

    async def wait_running(
        self, within: float, alive: Callable[[], None] = lambda: None
    ) -> None:
        """Wait until Home Assistant reports it has finished starting."""
        deadline = time.monotonic() + within
        while True:
            alive()
            config = await self.request("GET", "/api/config")
            if config.get("state") == "RUNNING":
                return
            if time.monotonic() > deadline:
                raise HarnessError(f"Home Assistant still {config.get('state')}")
            await asyncio.sleep(0.5)

    async def settled_entries(self, within: float) -> list[dict[str, Any]]:
        """The config entries once none is setting up (or ``within`` s passed)."""
        deadline = time.monotonic() + within
        while True:
            entries: list[dict[str, Any]] = await self.request(
                "GET", "/api/config/config_entries/entry"
            )
            settling = [e for e in entries if e["state"] == "setup_in_progress"]
            if not settling or time.monotonic() > deadline:
                return entries
            await asyncio.sleep(0.5)

    async def remove_failed_entries(self, keep: Iterable[str] = ()) -> list[str]:
        """Delete other domains' config entries that failed to set up; return
        their domains.

        Onboarding's core_config step starts flows for a few default integrations
        (met, radio_browser, google_translate...) that need internet access or
        packages not installed here. Their failures are logged; removing the
        broken entries keeps the UI clean. The domains in ``keep`` stay.
        """
        entries = await self.settled_entries(15)
        removed = []
        for entry in entries:
            if entry["domain"] not in {DOMAIN, *keep} and entry["state"] in (
                "setup_error",
                "setup_retry",
                "migration_error",
            ):
                await self.request(
                    "DELETE", f"/api/config/config_entries/entry/{entry['entry_id']}"
                )
                removed.append(entry["domain"])
        return removed

    async def add_entry(
        self,
        host: str,
        port: int,
        *,
        found: bool | None = None,
        not_offered: str | None = None,
    ) -> tuple[str, str]:
        """Add an engine through the config flow as a user does; return the entry
        id and how it was chosen.

        The first form lists the engines the integration found around here: pick
        this one when it is listed, else choose to type an address and enter it.
        ``found`` True or False insists on one way (a check that the flow offers
        the engine, or that typing works even when engines were found). The
        flow must not offer ``not_offered`` ("host:port").
        """
        base = "/api/config/config_entries/flow"
        result = await self.request(
            "POST", base, json={"handler": DOMAIN, "show_advanced_options": False}
        )
        how = "entered its address"
        wanted = f"{host.lower()}:{port}"
        if result.get("type") == "form" and result.get("step_id") == "user":
            offered = select_options(result, "engine")
            if not_offered is not None and not_offered in offered:
                raise HarnessError(f"the flow offers {not_offered}: {offered}")
            pick = wanted in offered and found is not False
            if found and not pick:
                raise HarnessError(f"the flow does not offer {wanted}: {offered}")
            if not pick and "manual" not in offered:
                raise HarnessError(
                    f"the flow offers no way to type an address: {result}"
                )
            if pick:
                how = "picked it among the engines found"
            result = await self.request(
                "POST",
                f"{base}/{result['flow_id']}",
                json={"engine": wanted if pick else "manual"},
            )
        elif found:
            raise HarnessError(f"the flow found no engine to offer: {result}")
        if result.get("type") == "form" and result.get("step_id") == "manual":
            result = await self.request(
                "POST", f"{base}/{result['flow_id']}", json={"host": host, "port": port}
            )
        if result.get("type") != "create_entry":
            raise HarnessError(f"config flow did not create an entry: {result}")
        entry_id: str = result["result"]["entry_id"]
        return entry_id, how

    async def add_channel(
        self, entry_id: str, name: str, content: str, group: str = ""
    ) -> None:
        """Add a channel (a config subentry) through its flow."""
        base = "/api/config/config_entries/subentries/flow"
        flow = await self.request(
            "POST",
            base,
            json={"handler": [entry_id, "channel"], "show_advanced_options": False},
        )
        fields = {"name": name, "content": content, "kind": "content_id"}
        if group:
            fields["group"] = group
        result = await self.request("POST", f"{base}/{flow['flow_id']}", json=fields)
        if result.get("type") != "create_entry":
            raise HarnessError(f"channel flow did not create a channel: {result}")

    async def set_options(self, entry_id: str, **values: Any) -> None:
        """The options flow: every option as the form shows it, but ``values``."""
        base = "/api/config/config_entries/options/flow"
        flow = await self.request("POST", base, json={"handler": entry_id})
        shown = {
            item["name"]: item["default"]
            for item in flow["data_schema"]
            if "default" in item
        }
        unknown = set(values) - {item["name"] for item in flow["data_schema"]}
        if unknown:
            raise HarnessError(f"the options form has no {sorted(unknown)}")
        result = await self.request(
            "POST", f"{base}/{flow['flow_id']}", json={**shown, **values}
        )
        if result.get("type") != "create_entry":
            raise HarnessError(f"options flow: {result}")

    async def wait_entry_loaded(
        self, entry_id: str, within: float = ENTRY_LOAD_TIMEOUT
    ) -> dict[str, Any]:
        """Wait for the entry to reach state 'loaded'; return it."""
        deadline = time.monotonic() + within
        while True:
            entries = await self.request(
                "GET", f"/api/config/config_entries/entry?domain={DOMAIN}"
            )
            entry = next((e for e in entries if e["entry_id"] == entry_id), None)
            if entry is None:
                raise HarnessError(f"config entry {entry_id} disappeared")
            if entry["state"] == "loaded":
                return dict(entry)
            if entry["state"] in ("setup_error", "migration_error", "failed_unload"):
                raise HarnessError(f"config entry failed: {entry}")
            if time.monotonic() > deadline:
                raise HarnessError(
                    f"config entry not loaded in {within:.0f} s: {entry}"
                )
            await asyncio.sleep(0.5)

    async def websocket(self, *commands: dict[str, Any]) -> list[Any]:
        """Run commands over one WebSocket connection; return their results."""
        results: list[Any] = []
        async with self.session.ws_connect(f"{self.base_url}/api/websocket") as ws:
            await ws.receive_json()  # auth_required
            await ws.send_json({"type": "auth", "access_token": self.access_token})
            reply = await ws.receive_json()
            if reply.get("type") != "auth_ok":
                raise HarnessError(f"websocket auth failed: {reply}")
            for command in commands:
                self._ws_id += 1
                await ws.send_json({"id": self._ws_id, **command})
                while True:
                    reply = await ws.receive_json()
                    if reply.get("id") == self._ws_id and reply["type"] == "result":
                        break
                if not reply.get("success"):
                    raise HarnessError(f"websocket {command['type']}: {reply}")
                results.append(reply.get("result"))
        return results

    async def confirm_http_config(self) -> None:
        """Confirm the ``http:`` settings of configuration.yaml as working.

        From 2026 on, Home Assistant moves them into its storage as a trial that
        reverts, restarting Home Assistant, unless confirmed within five minutes
        (a bench of ten runs lost its Home Assistant in the eighth). Releases
        without the trial do not know the command; nothing to confirm is fine too.
        """
        try:
            await self.websocket({"type": "http/config/promote"})
        except HarnessError as err:
            if "unknown_command" not in str(err) and "not_allowed" not in str(err):
                raise

    async def long_lived_token(self, client_name: str, days: int = 1) -> str:
        """A long-lived access token of the onboarded user."""
        (token,) = await self.websocket(
            {
                "type": "auth/long_lived_access_token",
                "client_name": client_name,
                "lifespan": days,
            }
        )
        return str(token)

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
            for item in await self.request("GET", "/api/states")
        }
        return [(entity_id, states.get(entity_id, "?")) for entity_id in ids]


# ----------------------------------------------------------- Home Assistant


class _Hass:
    """What both ways of running Home Assistant share: the folder, the port, the
    HTTP session and the onboarded API."""

    def __init__(
        self,
        config_dir: Path,
        *,
        name: str,
        port: int = 0,
        components: Iterable[str] = (),
        logs: Mapping[str, str] | None = None,
        custom: Mapping[str, Path] | None = None,
    ) -> None:
        """Prepare; nothing starts before ``start``. ``custom``: more custom
        integrations to link in (domain: folder; see write_config)."""
        self.config_dir = config_dir
        self.name = name
        self.port = port
        self.components = tuple(components)
        self.logs = logs
        self.custom = dict(custom or {})
        self.url = ""
        self._http: aiohttp.ClientSession | None = None
        self._api: HomeAssistantApi | None = None

    @property
    def api(self) -> HomeAssistantApi:
        """The API, as the onboarded user."""
        assert self._api is not None, "start() first"
        return self._api

    @property
    def log_file(self) -> Path:
        """Home Assistant's own log file."""
        return self.config_dir / "home-assistant.log"

    def _prepare(self) -> None:
        self.port = pick_port(self.port)
        self.url = f"http://127.0.0.1:{self.port}"
        ensure_requirements(c for c in self.components if c not in self.custom)
        write_config(
            self.config_dir,
            self.port,
            name=self.name,
            components=self.components,
            logs=self.logs,
            custom=self.custom,
        )

    def _alive(self) -> None:
        """Raise when Home Assistant is gone."""

    async def _onboard(self) -> None:
        self._http = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=10)
        )
        await wait_http(
            self._http, f"{self.url}/api/onboarding", START_TIMEOUT, self._alive
        )
        self._api = HomeAssistantApi(self._http, self.url)
        await self._api.onboard()
        await self._api.wait_running(START_TIMEOUT, self._alive)
        await self._api.confirm_http_config()

    async def _close_http(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None

    async def __aenter__(self) -> Self:
        """Start it."""
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop it."""
        await self.stop()

    async def start(self) -> None:
        """Start, onboard, wait until running."""
        raise NotImplementedError

    async def stop(self) -> None:
        """Stop."""
        raise NotImplementedError


class HassProcess(_Hass):
    """Home Assistant as the ``hass`` command runs it, in a child process."""

    def __init__(
        self,
        config_dir: Path,
        *,
        prefix: Iterable[str] = (),
        verbose: bool = False,
        **kwargs: Any,
    ) -> None:
        """``prefix`` goes before the command (e.g. ``taskset -c 0``)."""
        super().__init__(config_dir, **kwargs)
        self.prefix = list(prefix)
        self.verbose = verbose
        self.child: Child | None = None

    def _alive(self) -> None:
        if self.child is not None:
            self.child.check_alive()

    async def start(self) -> None:
        """Start the process, onboard, wait until it runs."""
        self._prepare()
        # cwd is the folder above the configuration, not the repo: the repo's
        # custom_components package must not shadow the configuration's one.
        self.child = Child(
            "Home Assistant",
            [
                *self.prefix,
                sys.executable,
                "-m",
                "homeassistant",
                "-c",
                str(self.config_dir),
                "--skip-pip",
            ],
            cwd=self.config_dir.parent,
            log_path=self.config_dir.parent / "hass-console.log",
        )
        await self.child.start(verbose=self.verbose)
        await self._onboard()

    async def stop(self) -> None:
        """Stop the process (SIGTERM, then SIGKILL after a minute)."""
        await self._close_http()
        if self.child is not None:
            await self.child.stop(grace=60)


class HassInProcess(_Hass):
    """Home Assistant set up by ``homeassistant.bootstrap`` in this process, as
    ``hass -c DIR --skip-pip`` does, with its real HTTP server on loopback."""

    def __init__(self, config_dir: Path, **kwargs: Any) -> None:
        """Prepare; ``hass`` is the HomeAssistant object once started."""
        super().__init__(config_dir, **kwargs)
        self.hass: Any = None
        self._running: asyncio.Future[int] | None = None

    def _alive(self) -> None:
        if self._running is not None and self._running.done():
            raise HarnessError("Home Assistant stopped while starting")

    async def start(self) -> None:
        """Bootstrap, onboard, wait until it runs."""
        from homeassistant import bootstrap
        from homeassistant.runner import RuntimeConfig

        self._prepare()
        runtime = RuntimeConfig(
            config_dir=str(self.config_dir),
            skip_pip=True,
            log_file=str(self.log_file),
        )
        hass = await bootstrap.async_setup_hass(runtime)
        if hass is None or hass.config.recovery_mode:
            raise HarnessError(
                f"Home Assistant did not set up (recovery mode); read {self.log_file}"
            )
        self.hass = hass
        # Its console log stays for errors; the rest goes to home-assistant.log.
        for handler in logging.getLogger().handlers:
            listener = getattr(handler, "listener", None)
            for inner in (handler, *getattr(listener, "handlers", ())):
                if type(inner) is logging.StreamHandler:
                    inner.setLevel(logging.ERROR)
        self._running = asyncio.ensure_future(hass.async_run(attach_signals=False))
        await self._onboard()

    async def stop(self) -> None:
        """Stop Home Assistant and wait for its run to end."""
        await self._close_http()
        if self.hass is not None:
            await self.hass.async_stop()
        if self._running is not None:
            with contextlib.suppress(Exception):
                await self._running


# ---------------------------------------------------------------- log reading


def log_problems(path: Path) -> tuple[list[str], list[str]]:
    """The ERROR records and the "Detected ..." reports of a home-assistant.log
    (first line of each record)."""
    errors: list[str] = []
    detected: list[str] = []
    for line in path.read_text(errors="replace").splitlines():
        if re.match(r"^\d{4}-\d\d-\d\d [\d:.+-]+ ERROR ", line):
            errors.append(line)
        if "Detected " in line and re.match(r"^\d{4}-\d\d-\d\d ", line):
            detected.append(line)
    return errors, detected
