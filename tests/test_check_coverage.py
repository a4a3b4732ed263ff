"""script/check_coverage.py: make test fails on any module below its minimum."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parent.parent / "script" / "check_coverage.py"
PACKAGE = "custom_components/acestream_proxy/"


def _load():
    spec = importlib.util.spec_from_file_location("check_coverage", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _report(**percent: float) -> dict:
    return {
        "files": {
            f"{PACKAGE}{name.replace('_py', '.py')}": {
                "summary": {"percent_covered": value, "missing_lines": 1}
            }
            for name, value in percent.items()
        }
    }


def test_a_module_below_the_minimum_fails_however_high_the_total(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """One small module at 94 % fails even when the others carry the total."""
    check = _load()
    report = tmp_path / "coverage.json"
    report.write_text(json.dumps(_report(big_py=100.0, hub_py=99.0, small_py=94.0)))
    assert check.main([str(report)]) == 1
    err = capsys.readouterr().err
    assert f"{PACKAGE}small.py: 94.00 % < 95 %" in err
    assert "hub.py" not in err

    report.write_text(json.dumps(_report(big_py=100.0, small_py=95.0)))
    assert check.main([str(report)]) == 0


def test_the_config_flow_must_be_fully_covered() -> None:
    """config_flow.py needs 100 %; a report without our modules fails too."""
    check = _load()
    assert check.check(_report(config_flow_py=99.5), 95.0) == [
        f"{PACKAGE}config_flow.py: 99.50 % < 100 % (1 lines not run)"
    ]
    assert check.check(_report(config_flow_py=100.0), 95.0) == []
    assert check.check({"files": {}}, 95.0)


def test_every_module_of_the_flows_must_be_fully_covered() -> None:
    """Each module of flows/, a new one too, needs 100 %; the rest keeps 95 %."""
    check = _load()
    report = _report(**{"flows/engine_py": 100.0, "flows/any_new_py": 99.5})
    assert check.check(report, 95.0) == [
        f"{PACKAGE}flows/any_new.py: 99.50 % < 100 % (1 lines not run)"
    ]
    assert check.check(_report(**{"flows/key_py": 100.0, "hub_py": 96.0}), 95.0) == []
    assert check.check(_report(flows_py=96.0), 95.0) == []
