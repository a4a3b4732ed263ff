"""The deprecation guard of conftest fails a test on a report about our code."""

from __future__ import annotations

from pathlib import Path

from homeassistant.core import HomeAssistant
import pytest

from tests.deprecations import PACKAGE_DIR, DeprecationGuard, problem_of_warning

# Code compiled under a file name inside our package runs as our code would: Home
# Assistant's frame walk and the warning's attribution both see our package.
OUR_FILE = str(Path(PACKAGE_DIR) / "selftest_deprecated.py")


def _run_as_our_code(source: str) -> None:
    # Fixed source, run to get a frame inside our package.
    exec(
        compile(source, OUR_FILE, "exec"),
        {"__name__": "custom_components.acestream_proxy.selftest_deprecated"},
    )


async def test_a_usage_report_about_our_code_fails_the_test(
    hass: HomeAssistant, deprecation_guard: DeprecationGuard
) -> None:
    _run_as_our_code(
        "from homeassistant.helpers import frame\n"
        "frame.report_usage('uses a retired API', breaks_in_ha_version='2099.1')\n"
    )

    assert len(deprecation_guard.problems) == 1
    assert (
        "Detected that custom integration 'acestream_proxy' uses a retired API"
        in deprecation_guard.problems[0]
    )
    with pytest.raises(pytest.fail.Exception, match="uses a retired API"):
        deprecation_guard.check()
    # Handled here: the guard must not fail this test again at teardown.
    deprecation_guard.problems.clear()


async def test_a_deprecation_warning_from_our_code_fails_the_test(
    deprecation_guard: DeprecationGuard,
) -> None:
    _run_as_our_code(
        "import warnings\nwarnings.warn('old spelling', DeprecationWarning, stacklevel=1)\n"
    )

    assert deprecation_guard.problems == [
        f"{OUR_FILE}:2: DeprecationWarning: old spelling"
    ]
    with pytest.raises(pytest.fail.Exception, match="old spelling"):
        deprecation_guard.check()
    deprecation_guard.problems.clear()


async def test_reports_about_others_pass(
    hass: HomeAssistant,
    deprecation_guard: DeprecationGuard,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Another custom integration's report, and a deprecation warning raised from
    code that is not ours, are not our failures."""
    other_file = str(Path(PACKAGE_DIR).parent / "other_thing" / "sensor.py")
    # As above, a frame inside another custom integration.
    exec(
        compile(
            "from homeassistant.helpers import frame\n"
            "frame.report_usage('uses a retired API', breaks_in_ha_version='2099.1')\n",
            other_file,
            "exec",
        ),
        {"__name__": "custom_components.other_thing.sensor"},
    )

    assert "Detected that custom integration 'other_thing'" in caplog.text
    assert deprecation_guard.problems == []
    assert problem_of_warning("old spelling", DeprecationWarning, __file__, 1) is None
    assert problem_of_warning("not a deprecation", UserWarning, OUR_FILE, 1) is None
    deprecation_guard.check()
