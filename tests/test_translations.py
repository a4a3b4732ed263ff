"""Every string the integration can show has its text in translations/en.json.

The keys are read from the code itself (its syntax tree, literal values and the
constants they name), never from a list kept here: an abort reason, form error,
step, selector option, exception, repair issue, device trigger, entity or action
added to the code without its text fails this test.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass, field
import functools
import importlib
import json
from pathlib import Path
import re
from types import ModuleType
from typing import Any

from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
import yaml

from custom_components.acestream_proxy.compat import HA_VERSION
from custom_components.acestream_proxy.const import DOMAIN

INTEGRATION = Path(__file__).parent.parent / "custom_components" / "acestream_proxy"
PACKAGE = "custom_components.acestream_proxy"
STRINGS: dict[str, Any] = json.loads(
    (INTEGRATION / "translations" / "en.json").read_text()
)

# What Home Assistant's flow helpers abort with when the code does not say.
IMPLICIT_ABORTS = {
    "_abort_if_unique_id_configured": "already_configured",
    "_async_abort_entries_match": "already_configured",
    "async_set_unique_id": "already_in_progress",
    "async_update_reload_and_abort": "reconfigure_successful",
    "async_update_and_abort": "reconfigure_successful",
}
PLATFORMS = {"binary_sensor", "button", "sensor"}
FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef)


class Unreadable(Exception):
    """A key the test cannot read from the code: make it a literal or a constant."""


@dataclass
class Module:
    # Dotted below the integration: "hub", "flows.engine", "flows.__init__".
    name: str
    tree: ast.Module
    runtime: ModuleType
    parents: dict[ast.AST, ast.AST] = field(default_factory=dict)
    # Every node of the tree, walked once: the readers below ask for them often.
    nodes: list[ast.AST] = field(default_factory=list)

    def where(self, node: ast.AST) -> str:
        return f"{self.name.replace('.', '/')}.py:{getattr(node, 'lineno', '?')}"

    @property
    def dotted(self) -> str:
        return _dotted(self.name)

    def resolve(self, node: ast.ImportFrom) -> str:
        """The absolute module an import of this module reads from."""
        if not node.level:
            return node.module or ""
        base = [PACKAGE, *self.name.split(".")[:-1]]
        base = base[: len(base) - node.level + 1]
        return ".".join([*base, node.module] if node.module else base)

    def enclosing(self, node: ast.AST, kind: type | tuple[type, ...]) -> Any:
        while node in self.parents:
            node = self.parents[node]
            if isinstance(node, kind):
                return node
        return None


def _dotted(name: str) -> str:
    """The name Python imports a module by, from its name below the integration."""
    parts = name.split(".")
    return ".".join((PACKAGE, *parts[: -1 if parts[-1] == "__init__" else None]))


def _load() -> dict[str, Module]:
    modules = {}
    for path in sorted(INTEGRATION.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        name = ".".join(path.relative_to(INTEGRATION).with_suffix("").parts)
        module = Module(name, tree, importlib.import_module(_dotted(name)))
        module.nodes = list(ast.walk(tree))
        for parent in module.nodes:
            for child in ast.iter_child_nodes(parent):
                module.parents[child] = parent
        modules[name] = module
    return modules


MODULES = _load()


@functools.cache
def _nodes(kind: type) -> list[tuple[Module, Any]]:
    return [
        (module, node)
        for module in MODULES.values()
        for node in module.nodes
        if isinstance(node, kind)
    ]


def _called(call: ast.Call) -> str | None:
    func = call.func
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return None


def _keyword(call: ast.Call, name: str) -> ast.expr | None:
    return next((kw.value for kw in call.keywords if kw.arg == name), None)


def _imports(module: Module, name: str, source: Module) -> bool:
    return any(
        isinstance(node, ast.ImportFrom)
        and module.resolve(node) == source.dotted
        and any(alias.name == name for alias in node.names)
        for node in module.nodes
    )


def _calls_to(
    name: str, source: Module | None = None
) -> Iterator[tuple[Module, ast.Call]]:
    """Calls of a function; of a module-level one of ``source``, only those that
    reach it (same module, or imported from there)."""
    for module, call in _nodes(ast.Call):
        if _called(call) != name:
            continue
        if (
            source is not None
            and isinstance(call.func, ast.Name)
            and module is not source
            and not _imports(module, name, source)
        ):
            continue
        yield module, call


def _defined_in(func: ast.AST) -> Module | None:
    """The module of a module-level function (None for methods)."""
    for module in MODULES.values():
        if func in module.tree.body:
            return module
    return None


def _values(module: Module, node: ast.expr) -> list[str]:
    """The string(s) an expression stands for: a literal, a constant, an enum's
    values, a parameter, read at every call of its function, or either side of a
    conditional expression."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.IfExp):
        return [*_values(module, node.body), *_values(module, node.orelse)]
    func = module.enclosing(node, FUNCTIONS)
    if isinstance(node, ast.Name) and func is not None:
        params = [a.arg for a in (*func.args.posonlyargs, *func.args.args)]
        if node.id in params or node.id in [a.arg for a in func.args.kwonlyargs]:
            return _argument_values(func, node.id)
    try:
        # Evaluated in the integration's module: its constants and enums.
        value = eval(
            # "<...>" file names are not traced by coverage (a real path would be).
            compile(ast.Expression(node), f"<{module.where(node)}>", "eval"),
            vars(module.runtime),
        )
    except NameError as err:
        raise Unreadable(f"{module.where(node)}: {ast.unparse(node)}") from err
    if isinstance(value, str):
        return [value]
    return [str(getattr(item, "value", item)) for item in value]


def _argument_values(func: ast.FunctionDef, param: str) -> list[str]:
    params = [a.arg for a in (*func.args.posonlyargs, *func.args.args)]
    found: list[str] = []
    for module, call in _calls_to(func.name, _defined_in(func)):
        arg = _keyword(call, param)
        if arg is None and param in params:
            index = params.index(param)
            if (
                params
                and params[0] in ("self", "cls")
                and isinstance(call.func, ast.Attribute)
            ):
                index -= 1
            if index < len(call.args):
                arg = call.args[index]
        if arg is not None:
            found += _values(module, arg)
    if not found:
        raise Unreadable(f"no call of {func.name} gives {param}")
    return found


@functools.cache
def _subentry_types() -> dict[str, str]:
    """Subentry flow class -> subentry type, from the config flow's own table."""
    types: dict[str, str] = {}
    for module, func in _nodes(ast.FunctionDef):
        if func.name != "async_get_supported_subentry_types":
            continue
        for node in ast.walk(func):
            if isinstance(node, ast.Dict):
                for key, value in zip(node.keys, node.values, strict=True):
                    assert key is not None
                    assert isinstance(value, ast.Name)
                    types[value.id] = _values(module, key)[0]
    return types


@functools.cache
def _fixable_issues() -> tuple[str, ...]:
    keys = []
    for module, call in _calls_to("async_create_issue"):
        fixable = _keyword(call, "is_fixable")
        if isinstance(fixable, ast.Constant) and fixable.value:
            keys += _values(module, _keyword(call, "translation_key"))
    return tuple(keys)


def _bases(cls: ast.ClassDef) -> set[str]:
    return {
        base.id if isinstance(base, ast.Name) else getattr(base, "attr", "")
        for base in cls.bases
    }


def _sections(module: Module, node: ast.AST, seen: frozenset[str] = frozenset()):
    """The en.json sections (as key paths) a flow string at ``node`` shows in."""
    cls = module.enclosing(node, ast.ClassDef)
    if cls is not None:
        bases = _bases(cls)
        if "ConfigFlow" in bases:
            return [("config",)]
        if "OptionsFlow" in bases:
            return [("options",)]
        if bases & {"ConfigSubentryFlow", "FormSubentryFlow"}:
            return [("config_subentries", _subentry_types()[cls.name])]
        if "RepairsFlow" in bases:
            return [("issues", key, "fix_flow") for key in _fixable_issues()]
        raise Unreadable(f"{module.where(node)}: flow string outside a flow")
    func = module.enclosing(node, FUNCTIONS)
    if func is None or func.name in seen:
        raise Unreadable(f"{module.where(node)}: flow string outside a flow")
    sections = [
        section
        for caller, call in _calls_to(func.name, _defined_in(func))
        for section in _sections(caller, call, seen | {func.name})
    ]
    if not sections:
        raise Unreadable(f"{module.where(node)}: {func.name} is never called")
    return sections


def _form_fields(module: Module, call: ast.Call) -> list[str]:
    """The fields of a form: vol.Required/Optional keys of its schema, built in
    the call, in a local variable of the function or by a function it calls."""
    schema = _keyword(call, "data_schema")
    if schema is None:
        return []
    func = module.enclosing(call, FUNCTIONS)
    scan: list[tuple[Module, ast.AST]] = [(module, schema)]
    for node in ast.walk(schema):
        if isinstance(node, ast.Name):
            scan += [
                (module, assign.value)
                for assign in ast.walk(func)
                if isinstance(assign, ast.Assign)
                and any(
                    isinstance(t, ast.Name) and t.id == node.id for t in assign.targets
                )
            ]
    for owner, node in list(scan):
        for inner in ast.walk(node):
            if isinstance(inner, ast.Call) and isinstance(inner.func, ast.Name):
                name = inner.func.id
                scan += [
                    (source, defined)
                    for source in MODULES.values()
                    if source is owner or _imports(owner, name, source)
                    for defined in source.tree.body
                    if isinstance(defined, FUNCTIONS) and defined.name == name
                ]
    fields = []
    for owner, node in scan:
        for inner in ast.walk(node):
            if (
                isinstance(inner, ast.Call)
                and _called(inner) in ("Required", "Optional")
                and inner.args
            ):
                fields += _values(owner, inner.args[0])
    return list(dict.fromkeys(fields))


def _lookup(path: tuple[str, ...]) -> Any:
    node: Any = STRINGS
    for part in path:
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


type Need = dict[tuple[str, ...], str]


def _flow_keys(
    need: Need, module: Module, node: ast.AST, kind: str, values: list[str]
) -> None:
    for section in _sections(module, node):
        for value in values:
            need[(*section, kind, *value.split("/"))] = module.where(node)


def _flow_call_keys(need: Need, module: Module, call: ast.Call, name: str) -> None:
    """Aborts (said or implied) and steps of the flows."""
    if name == "async_show_form":
        steps = _values(module, _keyword(call, "step_id"))
        _flow_keys(need, module, call, "step", steps)
        for field in _form_fields(module, call):
            for step in steps:
                for part in ("data", "data_description"):
                    _flow_keys(need, module, call, "step", [f"{step}/{part}/{field}"])
        return
    reason = _keyword(call, "reason")
    if reason is not None:
        _flow_keys(need, module, call, "abort", _values(module, reason))
    elif name in IMPLICIT_ABORTS and not (
        name == "async_set_unique_id"
        and isinstance(_keyword(call, "raise_on_progress"), ast.Constant)
    ):
        _flow_keys(need, module, call, "abort", [IMPLICIT_ABORTS[name]])


def _other_call_keys(need: Need, module: Module, call: ast.Call, name: str) -> None:
    """Issues, selector options, exceptions and entity descriptions."""
    key_node = _keyword(call, "translation_key")
    if key_node is None:
        return
    where = module.where(call)
    keys = _values(module, key_node)
    if name == "async_create_issue":
        need[("issues", keys[0], "title")] = where
    elif name == "SelectSelectorConfig":
        for option in _select_options(module, call):
            need[("selector", keys[0], "options", option)] = where
    elif _keyword(call, "translation_domain") is not None:
        for key in keys:
            need[("exceptions", key, "message")] = where
    elif name.endswith("Description"):
        # A description made by a helper has one key per call of the helper.
        for key in keys:
            need[("entity", module.name, key, "name")] = where
            if (options := _keyword(call, "options")) is not None:
                for state in _values(module, options):
                    need[("entity", module.name, key, "state", state)] = where


def _required() -> Need:
    """Every en.json key the code needs, with where the code needs it."""
    need: Need = {}
    for module, call in _nodes(ast.Call):
        name = _called(call) or ""
        if name in ("async_abort", "async_show_form", *IMPLICIT_ABORTS):
            _flow_call_keys(need, module, call, name)
        else:
            _other_call_keys(need, module, call, name)
    for module, target in _nodes(ast.Subscript):
        # errors[field] = "reason"
        parent = module.parents[target]
        if (
            isinstance(target.value, ast.Name)
            and target.value.id == "errors"
            and isinstance(parent, ast.Assign)
            and target in parent.targets
        ):
            _flow_keys(need, module, parent, "error", _values(module, parent.value))
    _static_keys(need)
    return need


def _static_keys(need: Need) -> None:
    """Flow title, subentry types, device triggers and conditions, actions."""
    for module, node in _nodes(ast.Constant):
        if node.value == "title_placeholders":
            need[("config", "flow_title")] = module.where(node)
    for subentry_type in _subentry_types().values():
        for path in (("entry_type",), ("initiate_flow", "user")):
            need[("config_subentries", subentry_type, *path)] = (
                "async_get_supported_subentry_types"
            )
    for trigger in _automation_types("device_trigger"):
        need[("device_automation", "trigger_type", trigger)] = "device_trigger.py"
    for condition in _automation_types("device_condition"):
        need[("device_automation", "condition_type", condition)] = "device_condition.py"
    for service, fields in _services().items():
        for path in (("name",), ("description",)):
            need[("services", service, *path)] = "services.py"
        for name in fields:
            for path in (("name",), ("description",)):
                need[("services", service, "fields", name, *path)] = "services.yaml"


def _select_options(module: Module, call: ast.Call) -> list[str]:
    options = _keyword(call, "options")
    assert options is not None
    func = module.enclosing(call, FUNCTIONS)
    local = isinstance(options, ast.Name) and not hasattr(module.runtime, options.id)
    if not local:
        return _values(module, options)
    # Built in the function: the literal values of its SelectOptionDicts (the
    # others come from data, such as found engines, and carry their own label).
    loop_names = {
        target.id
        for node in ast.walk(func)
        if isinstance(node, (ast.comprehension, ast.For))
        for target in ast.walk(node.target)
        if isinstance(target, ast.Name)
    }
    values: list[str] = []
    for node in ast.walk(func):
        if isinstance(node, ast.Call) and _called(node) == "SelectOptionDict":
            value = _keyword(node, "value")
            assert value is not None
            if isinstance(value, ast.Name) and value.id in loop_names:
                continue
            values += _values(module, value)
    return values


def _automation_types(name: str) -> list[str]:
    """The types a device automation platform's schema accepts (its vol.In)."""
    module = MODULES[name]
    for call in ast.walk(module.tree):
        if isinstance(call, ast.Call) and _called(call) == "In":
            return _values(module, call.args[0])
    return []


def _services() -> dict[str, list[str]]:
    """Actions registered by the code, with the fields services.yaml gives them."""
    described = yaml.safe_load((INTEGRATION / "services.yaml").read_text())
    services: dict[str, list[str]] = {}
    for module, call in _calls_to("async_register"):
        if isinstance(call.func, ast.Attribute) and "services" in ast.unparse(
            call.func
        ):
            [name] = _values(module, call.args[1])
            services[name] = list((described.get(name) or {}).get("fields", {}))
            assert name in described, f"{name} is not in services.yaml"
    return services


def test_the_code_gives_keys_to_check() -> None:
    """The reader finds the kinds of strings there are (it is not blind)."""
    need = _required()
    kinds = {path[:3] if path[0] != "entity" else path[:2] for path in need}
    assert ("config", "abort", "already_in_progress") in need
    assert ("config", "step", "user") in need
    assert ("config", "step", "manual") in need
    assert ("config", "step", "manual", "data_description", "host") in need
    assert ("options", "step", "init", "data", "linger") in need
    assert (
        "issues",
        "engine_unreachable",
        "fix_flow",
        "step",
        "address",
        "data",
        "port",
    ) in need
    assert any(path[:3] == ("config", "error", "cannot_connect") for path in need)
    assert (
        "issues",
        "engine_unreachable",
        "fix_flow",
        "error",
        "cannot_connect",
    ) in need
    assert ("config_subentries", "channel", "error", "invalid_id") in need
    assert ("selector", "engine", "options", "manual") in need
    assert ("selector", "kind", "options", "infohash") in need
    assert ("exceptions", "unknown_channel", "message") in need
    assert ("exceptions", "not_playing", "message") in need
    assert ("device_automation", "trigger_type", "stream_started") in need
    assert ("device_automation", "condition_type", "has_viewers") in need
    assert ("entity", "sensor", "status", "state", "lingering") in need
    # Made by a helper, one call each: every key, not only the first call's.
    assert ("entity", "sensor", "live_delay", "name") in need
    assert ("services", "discover", "fields", "hosts", "name") in need
    assert len(kinds) > 10


def test_every_key_the_code_uses_is_translated() -> None:
    """Each abort, error, step, selector option, exception, issue, trigger type,
    entity and action of the code has its text."""
    missing = [
        f"{'.'.join(path)} (needed by {where})"
        for path, where in sorted(_required().items())
        if not _lookup(path)
    ]
    assert not missing, "missing from en.json:\n" + "\n".join(missing)


def test_exception_placeholders_match_their_messages() -> None:
    """A message names exactly the placeholders its exception passes."""
    for module, call in _nodes(ast.Call):
        placeholders = _keyword(call, "translation_placeholders")
        key = _keyword(call, "translation_key")
        if not isinstance(placeholders, ast.Dict) or key is None:
            continue
        if _keyword(call, "translation_domain") is None:
            continue
        names = {_values(module, k)[0] for k in placeholders.keys if k is not None}
        for value in _values(module, key):
            message = STRINGS["exceptions"][value]["message"]
            assert set(re.findall(r"{(\w+)}", message)) == names, module.where(call)


@pytest.mark.usefixtures("engine_sim")
async def test_every_registered_entity_has_a_name(
    hass: HomeAssistant, loaded_entry: MockConfigEntry
) -> None:
    """What the running integration registers (engine and channel entities) has a
    translated name, on the platforms the integration has."""
    result = await hass.config_entries.subentries.async_init(
        (loaded_entry.entry_id, "channel"), context={"source": "user"}
    )
    await hass.config_entries.subentries.async_configure(
        result["flow_id"], {"name": "A", "content": "0a" * 20}
    )
    await hass.async_block_till_done()
    entries = er.async_entries_for_config_entry(
        er.async_get(hass), loaded_entry.entry_id
    )
    assert len(entries) > 5
    for entry in entries:
        assert entry.platform == DOMAIN
        assert entry.domain in PLATFORMS
        assert entry.translation_key
        assert _lookup(("entity", entry.domain, entry.translation_key, "name")), (
            entry.entity_id
        )


async def test_aborts_of_home_assistants_helpers_have_their_text(
    hass: HomeAssistant,
) -> None:
    """From 2026.10 an abort that Home Assistant's flow helpers raise (here: a
    second flow for an engine being added) names Home Assistant as the domain of
    its text, and Home Assistant has it; before, the text is ours. Our own aborts
    (reconfigure included) always use ours."""
    import homeassistant.components.homeassistant as core_component

    core_strings = json.loads(
        (Path(core_component.__file__).parent / "strings.json").read_text()
    )
    data = {"host": "127.0.0.1", "port": 1}
    first = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": "integration_discovery"}, data=data
    )
    assert first["step_id"] == "discovery_confirm"
    second = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": "integration_discovery"}, data=data
    )
    assert second["reason"] == "already_in_progress"
    if HA_VERSION >= (2026, 10):
        assert second["translation_domain"] == "homeassistant"
        assert "already_in_progress" in core_strings["config"]["abort"]
    else:
        assert second.get("translation_domain") is None
    # Kept for the releases before 2026.10.
    assert STRINGS["config"]["abort"]["already_in_progress"]
    hass.config_entries.flow.async_abort(first["flow_id"])
