"""Checks behind quality_scale.yaml rules that no behaviour test covers: code
structure, entity metadata and what the README documents."""

from __future__ import annotations

import ast
from datetime import timedelta
import json
from pathlib import Path
import re
from typing import Any

from aiohttp.test_utils import TestClient
from homeassistant.config_entries import SOURCE_USER, ConfigEntryState
from homeassistant.const import EntityCategory
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr, entity_registry as er
from homeassistant.helpers.dispatcher import async_dispatcher_connect
from homeassistant.setup import async_setup_component
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry, MockUser
import yaml

from custom_components.acestream_proxy import PLATFORMS, const, updates
from custom_components.acestream_proxy.const import (
    DOMAIN,
    EVENT_TYPE,
    LOGGER,
)
from custom_components.acestream_proxy.data import AceStreamData
from custom_components.acestream_proxy.device_condition import CONDITION_TYPES
from custom_components.acestream_proxy.device_trigger import TRIGGER_TYPES
from custom_components.acestream_proxy.hub import get_hub
from custom_components.acestream_proxy.stream.engine import ContentKind, ContentRef
from tests.ha_fixtures import PREFIX, add_channel, add_key, until
from tests.helpers import read_bytes
from tests.simulator import EngineSimulator

ROOT = Path(__file__).parent.parent
INTEGRATION = ROOT / "custom_components" / "acestream_proxy"
README = (ROOT / "README.md").read_text()
STRINGS = json.loads((INTEGRATION / "translations" / "en.json").read_text())
SERVICES = yaml.safe_load((INTEGRATION / "services.yaml").read_text())


def _trees() -> dict[str, ast.Module]:
    """Every module of the integration, by its dotted name below it ("flows.key")."""
    return {
        ".".join(path.relative_to(INTEGRATION).with_suffix("").parts): ast.parse(
            path.read_text()
        )
        for path in INTEGRATION.rglob("*.py")
    }


def _section(title: str) -> str:
    """A README section's text, up to the next heading of the same level."""
    level = title.split(" ", maxsplit=1)[0]
    start = README.index(f"\n{title}\n")
    rest = README[start + len(title) + 2 :]
    end = re.search(rf"\n{level} ", rest)
    return rest[: end.start()] if end else rest


# -- code structure ----------------------------------------------------------------


def test_common_modules() -> None:
    """common-modules: the coordinator lives in coordinator.py and every entity of
    the platforms derives from a base class of entity.py."""
    trees = _trees()
    coordinators = [
        node.name
        for node in ast.walk(trees["coordinator"])
        if isinstance(node, ast.ClassDef)
        and any("DataUpdateCoordinator" in ast.unparse(b) for b in node.bases)
    ]
    assert coordinators
    bases = {
        node.name
        for node in ast.walk(trees["entity"])
        if isinstance(node, ast.ClassDef)
    }
    for platform in PLATFORMS:
        classes = [
            node
            for node in ast.walk(trees[platform.value])
            if isinstance(node, ast.ClassDef)
            and "Entity" in ast.unparse(node)
            and not node.name.endswith("Description")
        ]
        assert classes, platform
        for cls in classes:
            names = {ast.unparse(base) for base in cls.bases}
            assert names & bases, f"{platform}: {cls.name}"


def test_platforms_declare_parallel_updates() -> None:
    """parallel-updates: every platform says how many updates may run at once."""
    for platform in PLATFORMS:
        module = __import__(
            f"custom_components.acestream_proxy.{platform.value}",
            fromlist=["PARALLEL_UPDATES"],
        )
        assert module.PARALLEL_UPDATES == 0, platform


def test_http_goes_through_home_assistants_session() -> None:
    """inject-websession: no aiohttp session of our own; the engine client gets
    Home Assistant's shared one."""
    uses_shared = False
    for name, tree in _trees().items():
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                called = ast.unparse(node.func)
                assert not called.endswith("ClientSession"), name
                assert called != "async_create_clientsession", name
                if called == "EngineClient":
                    assert "async_get_clientsession" in ast.unparse(node.args[0]) or (
                        ast.unparse(node.args[0]) == "session"
                    ), name
                    uses_shared = True
    assert uses_shared


@pytest.mark.usefixtures("engine_sim")
async def test_runtime_data_and_entity_metadata(
    hass: HomeAssistant, loaded_entry: MockConfigEntry
) -> None:
    """runtime-data, has-entity-name, entity-category, entity-device-class: the
    loaded entry carries its typed runtime data; entities are named by their
    device plus a translated name, diagnostics are categorised, numbers classed."""
    assert isinstance(loaded_entry.runtime_data, AceStreamData)
    await add_channel(hass, loaded_entry, "A", "0a" * 20)
    entries = {
        e.translation_key: e
        for e in er.async_entries_for_config_entry(
            er.async_get(hass), loaded_entry.entry_id
        )
    }
    assert all(e.has_entity_name for e in entries.values())
    diagnostic = {
        key
        for key, e in entries.items()
        if e.entity_category is EntityCategory.DIAGNOSTIC
    }
    assert diagnostic == {"connectivity", "version", "live_delay"}
    classes = {key: e.original_device_class for key, e in entries.items()}
    assert classes["connectivity"] == "connectivity"
    assert classes["bitrate"] == classes["download_speed"] == "data_rate"
    assert classes["live_delay"] == "duration"
    assert classes["status"] == "enum"


@pytest.mark.usefixtures("engine_sim")
async def test_entities_unsubscribe_when_removed(
    hass: HomeAssistant, loaded_entry: MockConfigEntry
) -> None:
    """entity-event-setup: entities subscribe when added and unsubscribe when
    removed (nothing of theirs is left listening after an unload)."""
    await add_channel(hass, loaded_entry, "A", "0a" * 20)
    subentry_id = next(iter(loaded_entry.subentries))
    signals = (updates.SIGNAL_UPDATED, f"{DOMAIN}_channel_edited_{subentry_id}")

    def listeners() -> dict[str, int]:
        # One probe listener each tells whether the signal still has others.
        counts = {}
        for signal in signals:
            remove = async_dispatcher_connect(hass, signal, lambda *_: None)
            counts[signal] = len(hass.data["dispatcher"][signal]) - 1
            remove()
        return counts

    before = listeners()
    assert all(before.values()), before
    assert await hass.config_entries.async_unload(loaded_entry.entry_id)
    await hass.async_block_till_done()
    assert listeners() == dict.fromkeys(signals, 0)


def _devices(hass: HomeAssistant, entry: MockConfigEntry) -> dict[str, dr.DeviceEntry]:
    """The entry's devices by our identifier."""
    return {
        ident: device
        for device in dr.async_entries_for_config_entry(
            dr.async_get(hass), entry.entry_id
        )
        for domain, ident in device.identifiers
        if domain == DOMAIN
    }


async def test_devices_come_and_go_with_channels_and_broadcasts(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    engine_sim: EngineSimulator,
    owner_client: TestClient,
) -> None:
    """dynamic-devices: devices, counted: channels imported into a loaded entry get
    theirs at once (no reload), an ad-hoc broadcast has one while it plays, and
    each hangs off the engine's device."""
    assert set(_devices(hass, loaded_entry)) == {loaded_entry.entry_id}
    engine = _devices(hass, loaded_entry)[loaded_entry.entry_id]
    result = await hass.config_entries.subentries.async_init(
        (loaded_entry.entry_id, "playlist"), context={"source": SOURCE_USER}
    )
    playlist = (
        "#EXTM3U\n#EXTINF:-1,One\nacestream://" + "1a" * 20 + "\n"
        "#EXTINF:-1,Two\nacestream://" + "2b" * 20 + "\n"
    )
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {"playlist": playlist}
    )
    assert result["reason"] == "imported"
    await hass.async_block_till_done()
    assert loaded_entry.state is ConfigEntryState.LOADED
    channels = {
        f"channel_{sub.subentry_id}": sub.title
        for sub in loaded_entry.subentries.values()
    }
    devices = _devices(hass, loaded_entry)
    assert set(devices) == {loaded_entry.entry_id, *channels}
    for ident, title in channels.items():
        assert devices[ident].name == title
        assert devices[ident].via_device_id == engine.id

    cid = "3c" * 20
    adhoc = f"broadcast_{engine_sim.infohash_for(cid)}"
    async with owner_client.get(f"{PREFIX}/stream/{cid}") as resp:
        await read_bytes(resp, 20_000)
        devices = _devices(hass, loaded_entry)
        assert set(devices) == {loaded_entry.entry_id, *channels, adhoc}
        assert devices[adhoc].via_device_id == engine.id
        await get_hub(hass).async_stop(ContentRef(ContentKind.CONTENT_ID, cid))
    await until(lambda: adhoc not in _devices(hass, loaded_entry), 10, 0.05)
    assert set(_devices(hass, loaded_entry)) == {loaded_entry.entry_id, *channels}


async def test_every_kind_of_entity_has_a_stable_unique_id(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    engine_sim: EngineSimulator,
    owner_client: TestClient,
    hass_admin_user: MockUser,
) -> None:
    """entity-unique-id: engine, channel, access-key and ad-hoc broadcast entities
    all have one, built from what identifies their owner (entry, subentry or
    infohash; never the address), none shared, and the same after a reload."""
    await add_channel(hass, loaded_entry, "A", "0a" * 20)
    add_key(hass, loaded_entry, hass_admin_user.id, "Hall TV")
    await hass.async_block_till_done()
    registry = er.async_get(hass)

    def unique_ids() -> dict[str, str]:
        entries = er.async_entries_for_config_entry(registry, loaded_entry.entry_id)
        ids = {e.unique_id: e.entity_id for e in entries}
        assert len(ids) == len(entries)  # none shared
        return ids

    owners = {loaded_entry.entry_id: "engine"}
    for sub in loaded_entry.subentries.values():
        kind = "channel" if sub.subentry_type == "channel" else "access_key"
        owners[f"{kind}_{sub.subentry_id}"] = kind
    cid = "3c" * 20
    owners[f"broadcast_{engine_sim.infohash_for(cid)}"] = "broadcast"
    async with owner_client.get(f"{PREFIX}/stream/{cid}") as resp:
        await read_bytes(resp, 20_000)
        ids = unique_ids()
        await get_hub(hass).async_stop(ContentRef(ContentKind.CONTENT_ID, cid))
    kinds = {}
    for unique_id in ids:
        assert str(engine_sim.port) not in unique_id
        assert "127.0.0.1" not in unique_id
        owner = next(o for o in owners if unique_id.startswith(f"{o}_"))
        kinds.setdefault(owners[owner], set()).add(unique_id)
    assert set(kinds) == {"engine", "channel", "access_key", "broadcast"}
    assert all(len(of_kind) >= 2 for of_kind in kinds.values())

    await until(
        lambda: not any(o.startswith("broadcast_") for o in unique_ids()), 10, 0.05
    )
    before = unique_ids()
    assert await hass.config_entries.async_reload(loaded_entry.entry_id)
    await hass.async_block_till_done()
    assert unique_ids() == before


# -- what the README documents -------------------------------------------------------


def _description_problems(readme: str) -> list[str]:
    """What the README's opening (title to the first section) lacks as a
    high-level description: what the product is, the problem, what this does."""
    title, _, rest = readme.partition("\n")
    intro = rest.split("\n## ", 1)[0]
    intro = re.sub(r"```.*?```", "", intro, flags=re.DOTALL)
    prose = " ".join(
        line for line in intro.splitlines() if line and not line.startswith("-")
    )
    bullets = re.findall(r"^- (.+(?:\n  .+)*)", intro, re.MULTILINE)
    problems = []
    if title != "# AceStream Proxy for Home Assistant":
        problems.append("title")
    if len(prose) < 300:
        problems.append("no paragraph saying what this is")
    for needed in ("AceStream engine", "Home Assistant", "one reader per broadcast"):
        if needed not in prose:
            problems.append(f"the paragraph never says {needed!r}")
    if "**one** engine session per broadcast" not in prose:
        problems.append("the paragraph never says what the integration does")
    if len(bullets) < 8:
        problems.append("fewer than 8 features listed")
    features = " ".join(bullets)
    for feature in ("Channels", "media browser", "HLS", "failover", "M3U"):
        if feature not in features:
            problems.append(f"the features never name {feature!r}")
    if f"({const.DEFAULT_LINGER} s by default)" not in features:
        problems.append("the linger default is not the code's")
    return problems


def test_readme_describes_the_integration() -> None:
    """docs-high-level-description: the opening says what the AceStream engine's
    limit is, what the integration does about it, and lists what it offers, with
    the code's numbers; a README without that fails."""
    assert _description_problems(README) == []
    assert _description_problems("# AceStream Proxy for Home Assistant\n") != []
    wrong_default = README.replace("(30 s by default)", "(60 s by default)")
    assert _description_problems(wrong_default) == [
        "the linger default is not the code's"
    ]
    no_paragraph = re.sub(
        r"\nAceStream Proxy turns.*?server and authentication.\n",
        "\n",
        README,
        flags=re.DOTALL,
    )
    assert "no paragraph saying what this is" in _description_problems(no_paragraph)


def test_readme_has_the_user_sections() -> None:
    """docs-installation-instructions, docs-removal-instructions,
    docs-supported-devices, docs-troubleshooting, docs-known-limitations: the
    sections exist and say something."""
    assert README.startswith("# AceStream Proxy for Home Assistant")
    for title in (
        "## Requirements",
        "### HACS (recommended)",
        "### Manual",
        "### Remove",
        "## Troubleshooting",
        "## Known limitations",
    ):
        assert len(_section(title).strip()) > 100, title
    assert "AceStream engine (3.1 or newer)" in _section("## Requirements")
    # The debug-log recipe names the integration's real logger.
    assert f"{LOGGER.name}: debug" in _section("## Troubleshooting")


def test_readme_documents_every_action() -> None:
    """docs-actions: each action of services.yaml, with its fields."""
    actions = _section("### Actions")
    for service, spec in SERVICES.items():
        row = next(
            line for line in actions.splitlines() if f"`{DOMAIN}.{service}`" in line
        )
        for field in (spec or {}).get("fields", {}):
            if field != "entity_id":  # shown as "target media players"
                assert f"`{field}`" in row, (service, field)


def test_readme_documents_every_parameter() -> None:
    """docs-installation-parameters, docs-configuration-parameters: every field of
    the address form and every option, with the code's defaults and ranges."""
    configure = _section("## Configure")
    for label, default in (
        ("Host", const.DEFAULT_HOST),
        ("Port", const.DEFAULT_PORT),
    ):
        assert f"| {label} | `{default}` |" in configure
    for key, label in STRINGS["options"]["step"]["init"]["data"].items():
        row = next(
            (
                line
                for line in configure.splitlines()
                if line.startswith(f"| {label} |")
            ),
            None,
        )
        assert row is not None, label
        default = getattr(const, f"DEFAULT_{key.upper()}", None)
        limits = getattr(const, f"{key.upper()}_RANGE", None)
        if default is not None:
            assert f"| {default}" in row, label
        if limits is not None:
            assert f"| {limits[0]}\u2013{limits[1]} |" in row, label


def test_readme_documents_every_entity_event_and_trigger() -> None:
    """docs-supported-functions: every entity, event type and device trigger."""
    entities = _section("### Entities")
    for platform in STRINGS["entity"].values():
        for entity in platform.values():
            name = entity["name"]
            assert name in entities, name
    events = _section("### Events and automations")
    assert f"`{EVENT_TYPE}`" in events
    for trigger in TRIGGER_TYPES:
        assert f"`{trigger}`" in events, trigger


def _readme_automations() -> list[dict[str, Any]]:
    blocks = re.findall(r"```yaml\n(.*?)```", README, re.DOTALL)
    return [
        automation
        for block in blocks
        for automation in (yaml.safe_load(block) or {}).get("automation", [])
    ]


def _device_parts(automation: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    key = "triggers" if kind == "trigger" else "conditions"
    return [
        part
        for part in automation.get(key, [])
        if part.get(kind) == "device" and part.get("domain") == DOMAIN
    ]


def test_readme_documents_every_device_trigger_and_condition() -> None:
    """docs-triggers, docs-conditions: each device trigger and condition has a row
    saying when it fires or holds, and an example automation uses each kind."""
    for title, types, kind in (
        ("#### Device triggers", TRIGGER_TYPES, "trigger"),
        ("#### Device conditions", CONDITION_TYPES, "condition"),
    ):
        section = _section(title).split("\n### ")[0]
        rows = {
            row.split("|")[1].strip().strip("`"): row.split("|")[2].strip()
            for row in section.splitlines()
            if row.startswith("| `")
        }
        assert set(rows) == set(types), title
        assert all(len(text) > 15 for text in rows.values()), title
        used = [
            part["type"]
            for automation in _readme_automations()
            for part in _device_parts(automation, kind)
        ]
        assert used, title
        assert set(used) <= set(types), title


@pytest.mark.usefixtures("engine_sim")
async def test_readme_automations_pass_home_assistants_validation(
    hass: HomeAssistant, loaded_entry: MockConfigEntry
) -> None:
    """docs-examples, docs-triggers, docs-conditions: with a real channel's device
    put in, Home Assistant's automation integration accepts every README example
    (device triggers and conditions checked by our platforms' schemas)."""
    await add_channel(hass, loaded_entry, "Match", "0a" * 20)
    device = next(
        device
        for device in dr.async_entries_for_config_entry(
            dr.async_get(hass), loaded_entry.entry_id
        )
        if any(ident.startswith("channel_") for _, ident in device.identifiers)
    )
    text = yaml.safe_dump(_readme_automations()).replace(
        "MATCH_CHANNEL_DEVICE_ID", device.id
    )
    automations = yaml.safe_load(text)
    for number, automation in enumerate(automations):
        automation["id"] = f"readme_{number}"
    assert await async_setup_component(hass, "automation", {"automation": automations})
    await hass.async_block_till_done()
    states = hass.states.async_all("automation")
    assert len(states) == len(automations)
    # An example Home Assistant refuses is set up "unavailable".
    assert all(state.state == "on" for state in states), states
    # Off, so the example's time trigger leaves no timer behind.
    await hass.services.async_call(
        "automation", "turn_off", {"entity_id": "all"}, blocking=True
    )


def test_readme_examples_are_valid_automations() -> None:
    """docs-examples, docs-use-cases: the YAML examples parse, fire on our event
    and call our actions with their real fields."""
    automations = _readme_automations()
    assert automations
    for automation in automations:
        for trigger in automation["triggers"]:
            if trigger["trigger"] == "event":
                assert trigger["event_type"] == EVENT_TYPE
                assert trigger["event_data"]["type"] in TRIGGER_TYPES
        for action in automation["actions"]:
            domain, service = action["action"].split(".")
            if domain == DOMAIN:
                fields = set(SERVICES[service]["fields"])
                assert set(action.get("data", {})) <= fields
                assert set(action.get("target", {})) <= fields


@pytest.mark.usefixtures("engine_sim")
async def test_update_intervals_are_the_documented_ones(
    loaded_entry: MockConfigEntry,
) -> None:
    """appropriate-polling, docs-data-update: the engine is checked every 30 s and
    a playing broadcast's statistics read every 15 s, as the README says."""
    coordinator = loaded_entry.runtime_data.coordinator
    assert coordinator.update_interval == timedelta(seconds=30)
    assert timedelta(seconds=15) == updates.TICK * updates.STATS_EVERY_TICKS
    assert "checked every\n  30 s" in README or "checked every 30 s" in README
    assert "read every 15 s" in README


def test_every_done_rule_names_an_existing_test() -> None:
    """quality_scale.yaml claims a rule only with a proof: each "done" names tests
    that exist (tests/<file>.py::<test>) or a `make test` check."""
    rules = yaml.safe_load((INTEGRATION / "quality_scale.yaml").read_text())["rules"]
    assert len(rules) > 40
    for rule, spec in rules.items():
        assert isinstance(spec, dict), f"{rule}: needs a status and a comment"
        assert spec["status"] in {"done", "todo", "exempt"}, rule
        comment = spec.get("comment", "")
        assert comment, rule
        if spec["status"] != "done":
            continue
        cited = re.findall(r"(test_\w+\.py)(?:::(test_\w+))?", comment)
        assert cited or "`make test`" in comment, rule
        for file, test in cited:
            source = (ROOT / "tests" / file).read_text()
            if test:
                assert re.search(rf"def {test}\(", source), f"{rule}: {file}::{test}"
