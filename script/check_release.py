"""What a user does in the UI, on a real ``hass`` process, then its log is read.

Run it with the Python of the release to check (``make check-release`` runs it on
the newest homeassistant on PyPI, in the root script/newest.sh builds). Each step
goes through the HTTP and WebSocket API the frontend uses:

1. Home Assistant runs as under the Supervisor: its hassio integration talks to
   a stand-in Supervisor on loopback (script/fake_supervisor.py) with one
   AceStream add-on installed, whose add-on data is not ready yet (the add-on
   list answers 503; the hassio entry retries);
2. an engine added through the config flow by picking it among the engines found
   (a simulator on the default port): a discovery while Supervisor data is not
   ready, which must offer the engine and nothing of the add-on; then
   reconfigured (to another address of the same engine); a second engine added
   by typing its address;
3. the Supervisor's data made ready (the hassio entry reloads), then the
   ``discover`` action: it must find the installed add-on by its host name (the
   add-on's host name resolves to loopback for Home Assistant only, through
   /etc/hosts in a mount namespace of its own, as the Supervisor's DNS would);
4. a channel added, renamed (its reconfigure flow), and one of its entity ids
   renamed (``config/entity_registry/update``, as the entity settings dialog does);
5. an ad-hoc content played while its engine dies: the broadcast fails over to the
   other engine and its device moves to that engine's entry;
6. Home Assistant stopped, then ``home-assistant.log`` read: every ERROR record and
   every "Detected ..." report is printed; the exit status is 1 if there is any,
   or if a step failed;
7. the repair of an engine down for five minutes, on a Home Assistant of its own
   run in a child process (``--repair``) by ``homeassistant.bootstrap``, whose
   objects it reaches (the outage is dated back rather than waited for): the issue
   is listed, hidden while its entry is disabled on releases that link issues to
   entries (2026.11), and gone with the entry; that log is read as in step 6.

Needs root (the mount namespace), as ``script/newest.sh`` does.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
from pathlib import Path
import shutil
import sys
import tempfile
import time
from typing import Any

import aiohttp
from fake_supervisor import ADDON_SLUG, FakeSupervisor
from harness import (
    DOMAIN,
    ROOT,
    Child,
    HarnessError,
    HassInProcess,
    HassProcess,
    HomeAssistantApi,
    log,
    log_problems,
    pick_port,
    simulator_child,
    wait_http,
)

FOUND_PORT = 6878  # where the integration looks for an engine on this machine
CHANNEL = hashlib.sha1(b"acestream-proxy check channel").hexdigest()
ADHOC = hashlib.sha1(b"acestream-proxy check ad-hoc").hexdigest()
MOVE_WITHIN = 45.0
ADDON_HOST = ADDON_SLUG.replace("_", "-")  # the Supervisor's name for it
SUPERVISOR_TOKEN = hashlib.sha1(b"acestream-proxy check supervisor").hexdigest()
# Steps that went wrong but let the others run.
PROBLEMS: list[str] = []


async def devices(api: HomeAssistantApi) -> list[dict[str, Any]]:
    """The device registry, as the UI lists it."""
    (items,) = await api.websocket({"type": "config/device_registry/list"})
    return list(items)


async def reconfigure_entry(api: HomeAssistantApi, entry_id: str, host: str) -> None:
    """The entry's "Reconfigure" menu item: the same port, another host."""
    base = "/api/config/config_entries/flow"
    form = await api.request(
        "POST",
        base,
        json={"handler": DOMAIN, "show_advanced_options": False, "entry_id": entry_id},
    )
    if form.get("step_id") != "reconfigure":
        raise HarnessError(f"reconfigure did not show its form: {form}")
    result = await api.request(
        "POST", f"{base}/{form['flow_id']}", json={"host": host, "port": FOUND_PORT}
    )
    if result.get("reason") != "reconfigure_successful":
        raise HarnessError(f"reconfigure: {result}")


async def rename_channel(
    api: HomeAssistantApi, entry_id: str, subentry_id: str, name: str
) -> None:
    """The channel's "Reconfigure" item: every field as shown, a new name."""
    base = "/api/config/config_entries/subentries/flow"
    form = await api.request(
        "POST",
        base,
        json={
            "handler": [entry_id, "channel"],
            "show_advanced_options": False,
            "subentry_id": subentry_id,
        },
    )
    shown = {
        item["name"]: item.get("description", {}).get("suggested_value")
        for item in form.get("data_schema", [])
    }
    values = {key: value for key, value in shown.items() if value is not None}
    values["name"] = name
    result = await api.request("POST", f"{base}/{form['flow_id']}", json=values)
    if (
        result.get("type") != "abort"
        or result.get("reason") != "reconfigure_successful"
    ):
        raise HarnessError(f"channel reconfigure: {result}")


async def channel_steps(api: HomeAssistantApi, entry_id: str) -> None:
    """Add a channel, rename it, rename one of its entity ids."""
    await api.add_channel(entry_id, "Check Sports", CHANNEL)
    entries = await api.request(
        "GET", f"/api/config/config_entries/entry?domain={DOMAIN}"
    )
    entry = next(e for e in entries if e["entry_id"] == entry_id)
    (subentries,) = await api.websocket(
        {"type": "config_entries/subentries/list", "entry_id": entry_id}
    )
    subentry = next(s for s in subentries if s["title"] == "Check Sports")
    await rename_channel(api, entry_id, subentry["subentry_id"], "Check Football")
    log(f"channel added and renamed (entry {entry['title']})")
    await api.wait_entry_loaded(entry_id)
    old = await wait_entity(api, "sensor.check_sports_viewers")
    (updated,) = await api.websocket(
        {
            "type": "config/entity_registry/update",
            "entity_id": old,
            "new_entity_id": "sensor.check_renamed_viewers",
        }
    )
    log(f"entity id {old} renamed to {updated['entity_entry']['entity_id']}")
    try:
        await wait_state(api, "sensor.check_renamed_viewers")
    except HarnessError as err:  # told at the end; the next steps still run
        PROBLEMS.append(str(err))
        log(f"PROBLEM: {err}")


async def wait_entity(api: HomeAssistantApi, entity_id: str) -> str:
    """Wait until the entity registry has the entity; return its id."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        (items,) = await api.websocket({"type": "config/entity_registry/list"})
        if any(item["entity_id"] == entity_id for item in items):
            return entity_id
        await asyncio.sleep(0.5)
    raise HarnessError(f"{entity_id} never appeared")


async def wait_state(api: HomeAssistantApi, entity_id: str) -> None:
    """Wait until the renamed entity has a state that is not "unavailable"."""
    deadline = time.monotonic() + 30
    state: Any = None
    while time.monotonic() < deadline:
        states = await api.request("GET", "/api/states")
        state = next((s for s in states if s["entity_id"] == entity_id), None)
        if state is not None and state["state"] != "unavailable":
            log(f"{entity_id} is {state['state']}")
            return
        await asyncio.sleep(0.5)
    raise HarnessError(f"{entity_id} stays {state and state['state']}")


async def failover_steps(
    hass: HassProcess, sims: list[Child], entries: list[str], token: str
) -> None:
    """Play an ad-hoc content on the first engine, kill it, see the device move."""
    api = hass.api
    url = f"{hass.url}/api/{DOMAIN}/stream/{ADHOC}"
    headers = {"Authorization": f"Bearer {token}"}
    async with api.session.get(url, headers=headers) as resp:
        if resp.status != 200:
            raise HarnessError(f"ad-hoc stream: HTTP {resp.status}")
        await resp.content.readexactly(188 * 100)
        adhoc = [d for d in await devices(api) if d.get("model") == "Broadcast"]
        if len(adhoc) != 1 or entries[0] not in adhoc[0]["config_entries"]:
            raise HarnessError(f"no ad-hoc device on the first engine: {adhoc}")
        log(f"ad-hoc device '{adhoc[0]['name']}' is on the first engine; killing it")
        await sims[0].stop(grace=1)
        reading = asyncio.ensure_future(_drain(resp))
        try:
            deadline = time.monotonic() + MOVE_WITHIN
            while True:
                device = next(
                    d for d in await devices(api) if d["id"] == adhoc[0]["id"]
                )
                if device["config_entries"] == [entries[1]]:
                    break
                if time.monotonic() > deadline:
                    raise HarnessError(f"the ad-hoc device did not move: {device}")
                await asyncio.sleep(0.5)
        finally:
            reading.cancel()
    log(f"failover: the ad-hoc device moved to the second engine ({device['id']})")


async def _drain(resp: aiohttp.ClientResponse) -> None:
    while await resp.content.readany():
        pass


async def repair_steps(work: Path) -> None:
    """An engine down long enough for its repair issue (its log is read after)."""
    port = pick_port()
    sim = simulator_child(3, port, "1", work / "simulator-3.log")
    ha = HassInProcess(work / "repair" / "config", name="AceStream Proxy repair check")
    try:
        await sim.start()
        await ha.start()
        api = ha.api
        await wait_http(
            api.session,
            f"http://127.0.0.1:{port}/webui/api/service?method=get_version",
            30,
            sim.check_alive,
        )
        await api.remove_failed_entries()
        entry_id, _ = await api.add_entry("127.0.0.1", port, found=False)
        await api.wait_entry_loaded(entry_id)
        await sim.stop(grace=1)
        coordinator = ha.hass.config_entries.async_get_entry(
            entry_id
        ).runtime_data.coordinator
        module = sys.modules[type(coordinator).__module__]
        await coordinator.async_refresh()  # the outage begins
        if coordinator.down_since is None:
            raise HarnessError("the engine's outage was not noticed")
        coordinator.down_since -= module.REPAIR_AFTER
        await coordinator.async_refresh()
        issue_id = module.engine_issue_id(entry_id)

        async def listed() -> bool:
            [result] = await api.websocket({"type": "repairs/list_issues"})
            return any(i["issue_id"] == issue_id for i in result["issues"])

        if not await listed():
            raise HarnessError(f"no repair issue {issue_id} after the outage")
        log(f"repair issue listed after {module.REPAIR_AFTER} down")
        linked = sys.modules[
            type(coordinator).__module__.replace(".coordinator", ".compat")
        ].ISSUE_CONFIG_ENTRY
        await api.websocket(
            {
                "type": "config_entries/disable",
                "entry_id": entry_id,
                "disabled_by": "user",
            }
        )
        if await listed() == linked:
            PROBLEMS.append(
                f"repair issue {'listed' if linked else 'hidden'} while its entry is "
                f"disabled (linked to the entry: {linked})"
            )
        log(
            "entry disabled: its repair is "
            + (
                "hidden (linked to the entry)"
                if linked
                else "still listed (not linked)"
            )
        )
        await api.websocket(
            {
                "type": "config_entries/disable",
                "entry_id": entry_id,
                "disabled_by": None,
            }
        )
        await api.request("DELETE", f"/api/config/config_entries/entry/{entry_id}")
        if await listed():
            PROBLEMS.append("the repair issue stayed after its entry was removed")
        log("entry removed: its repair is gone")
        # Onboarding's default integrations (radio_browser...) look for the
        # internet; stopping Home Assistant during their setup logs an ERROR.
        await api.settled_entries(60)
    finally:
        await ha.stop()
        await sim.stop(grace=5)


def read_logs(paths: list[Path]) -> int:
    """Print each log's ERROR records and "Detected" lines; return how many."""
    count = 0
    for path in paths:
        errors, detected = log_problems(path)
        log(f"{path}: {len(errors)} ERROR records, {len(detected)} Detected lines")
        for line in errors + detected:
            print(f"  {line}")
        count += len(errors) + len(detected)
    return count


def supervised(work: Path, supervisor: FakeSupervisor) -> list[str]:
    """The command prefix that runs Home Assistant as under the Supervisor: its
    environment, and an /etc/hosts of its own where the add-on's host name is
    loopback (a private mount namespace: nothing else sees it)."""
    hosts = work / "hosts"
    hosts.write_text(
        Path("/etc/hosts").read_text(errors="replace") + f"\n127.0.0.1 {ADDON_HOST}\n"
    )
    return [
        # In script/newest.sh's root, / is no mount point and cannot be made
        # private, but that run's namespace is private already.
        "unshare", "--mount", "--propagation", "unchanged", "--",
        "/bin/sh", "-c",
        'mount --make-rprivate / 2>/dev/null; mount --bind "$0" /etc/hosts && exec "$@"',
        str(hosts),
        "env", f"SUPERVISOR=127.0.0.1:{supervisor.port}",
        f"SUPERVISOR_TOKEN={SUPERVISOR_TOKEN}",
        # Under the Supervisor the log goes to its journal only; keep the file.
        "HA_DUPLICATE_LOG_FILE=1",
    ]  # fmt: skip


async def hassio_entry(api: HomeAssistantApi) -> dict[str, Any]:
    """The hassio integration's config entry (it makes it itself at start)."""
    deadline = time.monotonic() + 60
    while True:
        entries = await api.request(
            "GET", "/api/config/config_entries/entry?domain=hassio"
        )
        if entries:
            return dict(entries[0])
        if time.monotonic() > deadline:
            raise HarnessError("the hassio integration made no config entry")
        await asyncio.sleep(0.5)


async def supervisor_not_ready(api: HomeAssistantApi, sup: FakeSupervisor) -> None:
    """Before the engine is added: the hassio entry waits for the add-on list."""
    entry = await hassio_entry(api)
    if entry["state"] == "loaded" or not sup.requests.get("GET addons"):
        raise HarnessError(f"Supervisor data was ready too soon: {entry['state']}")
    log(
        f"Supervisor data not ready: hassio entry {entry['state']}, "
        f"add-on list asked {sup.requests['GET addons']} times (HTTP 503)"
    )


async def supervisor_ready_steps(api: HomeAssistantApi, sup: FakeSupervisor) -> None:
    """The add-on list answers; the ``discover`` action finds the add-on."""
    sup.ready()
    entry = await hassio_entry(api)
    await api.request(
        "POST", f"/api/config/config_entries/entry/{entry['entry_id']}/reload"
    )
    deadline = time.monotonic() + 60
    while (entry := await hassio_entry(api))["state"] != "loaded":
        if time.monotonic() > deadline:
            raise HarnessError(f"the hassio entry did not load: {entry}")
        await asyncio.sleep(0.5)
    log("Supervisor data ready: hassio entry loaded, one AceStream add-on installed")
    answer = await api.request(
        "POST",
        f"/api/services/{DOMAIN}/discover?return_response",
        json={"hosts": []},
    )
    found = answer.get("service_response", {}).get("found", [])
    if f"{ADDON_HOST}:{FOUND_PORT}" not in found:
        raise HarnessError(f"discover did not find the add-on {ADDON_HOST}: {answer}")
    log(f"discover found the add-on's engine: {found}")


async def check(args: argparse.Namespace) -> int:
    """Every step, then the log."""
    # Kept work goes under the project: script/newest.sh's /tmp dies with the run.
    keep_in = ROOT / ".demo" if args.keep else None
    if keep_in is not None:
        keep_in.mkdir(exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="acestream-check-", dir=keep_in))
    ports = [pick_port(FOUND_PORT), pick_port(0, {FOUND_PORT})]
    if ports[0] != FOUND_PORT:
        raise HarnessError(f"port {FOUND_PORT} is taken: the found engine needs it")
    sims = [
        simulator_child(i + 1, port, "1", work / f"simulator-{i + 1}.log")
        for i, port in enumerate(ports)
    ]
    supervisor = FakeSupervisor(SUPERVISOR_TOKEN)
    await supervisor.start()
    hass = HassProcess(
        work / "config",
        name="AceStream Proxy check",
        prefix=supervised(work, supervisor),
    )
    try:
        for sim in sims:
            await sim.start()
        await hass.start()
        api = hass.api
        import homeassistant.const

        log(
            f"Home Assistant {homeassistant.const.__version__} runs on {hass.url}, "
            f"Supervisor on 127.0.0.1:{supervisor.port}"
        )
        for sim, port in zip(sims, ports, strict=True):
            await wait_http(
                api.session,
                f"http://127.0.0.1:{port}/webui/api/service?method=get_version",
                30,
                sim.check_alive,
            )
        await api.remove_failed_entries(keep=["hassio"])
        await supervisor_not_ready(api, supervisor)
        first, how = await api.add_entry(
            "127.0.0.1",
            FOUND_PORT,
            found=True,
            not_offered=f"{ADDON_HOST}:{FOUND_PORT}",
        )
        await api.wait_entry_loaded(first)
        log(f"engine 127.0.0.1:{FOUND_PORT} added ({how}) while Supervisor data loads")
        await reconfigure_entry(api, first, "localhost")
        entry = await api.wait_entry_loaded(first)
        log(f"reconfigured: {entry['title']}")
        second, how = await api.add_entry("127.0.0.1", ports[1], found=False)
        await api.wait_entry_loaded(second)
        log(f"engine 127.0.0.1:{ports[1]} added ({how})")
        await supervisor_ready_steps(api, supervisor)
        await channel_steps(api, first)
        token = await api.long_lived_token("check")
        await failover_steps(hass, sims, [first, second], token)
    finally:
        await hass.stop()
        for sim in sims:
            await sim.stop(grace=5)
        await supervisor.stop()
    if supervisor.unknown:
        log(
            f"asked of the Supervisor and not answered: {sorted(set(supervisor.unknown))}"
        )
    # A child process: Home Assistant in a process patches the loop and the log
    # handlers of that process for good.
    child = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--repair", str(work)
    )
    if await child.wait() != 0:
        PROBLEMS.append(f"the repair check failed (exit {child.returncode})")
    problems = read_logs(
        [hass.log_file, work / "repair" / "config" / "home-assistant.log"]
    )
    if args.keep:
        log(f"kept {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    for problem in PROBLEMS:
        log(f"PROBLEM: {problem}")
    return 1 if problems or PROBLEMS else 0


def main() -> None:
    """Entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument("--repair", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    try:
        if args.repair is not None:
            asyncio.run(repair_steps(args.repair))
            for problem in PROBLEMS:
                log(f"PROBLEM: {problem}")
            sys.exit(1 if PROBLEMS else 0)
        code = asyncio.run(check(args))
    except (HarnessError, aiohttp.ClientError, OSError) as err:
        print(f"[check_release] FAILED: {err}", file=sys.stderr, flush=True)
        code = 1
    sys.exit(code)


if __name__ == "__main__":
    main()
