"""Nothing the kit cannot run skips silently in CI, and ``not_applicable`` tables are checked.

Each case runs a tiny test module through ``pytester`` (enabled in
``tests/conftest.py``) with the ``CI`` environment variable set or unset:
outside CI a test that cannot run is skipped with its reason; under
``CI=true`` the same test fails the run, saying why.
"""

from __future__ import annotations

import sys
import textwrap

import pytest
from hivemem.testing import in_ci, require_module, skip_or_fail

#: a module name nothing installs
ABSENT = "hmkit_absent_module"

#: each suite, and what a subclass that forgets its fixture is told it lacks
FORGETFUL = [
    pytest.param("BackendSuite", "no backend_url fixture", id="backend"),
    pytest.param("CacheSuite", "no cache_url fixture", id="cache"),
    pytest.param("CodecSuite", "no codec_kind fixture and no codec_name fixture", id="codec"),
]


@pytest.fixture
def ci(monkeypatch: pytest.MonkeyPatch) -> None:
    """Run as in CI."""
    monkeypatch.setenv("CI", "true")


@pytest.fixture
def no_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    """Run as on a developer's machine (even when this run itself is in CI)."""
    monkeypatch.delenv("CI", raising=False)


def _run(pytester: pytest.Pytester, source: str, *args: str) -> pytest.RunResult:
    pytester.makepyfile(test_subject=textwrap.dedent(source))
    return pytester.runpytest("-p", "no:cacheprovider", "-rsE", *args)


def _forgetful(suite: str) -> str:
    return f"""
        from hivemem.testing import {suite}

        class TestForgot({suite}):
            pass
    """


# -- a suite subclass without its fixture -------------------------------------------------


@pytest.mark.usefixtures("ci")
@pytest.mark.parametrize(("suite", "lacks"), FORGETFUL)
def test_suite_without_its_fixture_fails_under_ci(
    pytester: pytest.Pytester, suite: str, lacks: str
) -> None:
    result = _run(pytester, _forgetful(suite))
    outcomes = result.parseoutcomes()
    assert set(outcomes) == {"errors"}, outcomes  # every test of the suite, none skipped
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines([f"ERROR *TestForgot provides {lacks} *CI is set*"])


@pytest.mark.usefixtures("no_ci")
@pytest.mark.parametrize(("suite", "lacks"), FORGETFUL)
def test_suite_without_its_fixture_skips_with_the_reason_outside_ci(
    pytester: pytest.Pytester, suite: str, lacks: str
) -> None:
    result = _run(pytester, _forgetful(suite))
    outcomes = result.parseoutcomes()
    assert set(outcomes) == {"skipped"}, outcomes
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines([f"SKIPPED *TestForgot provides {lacks} (define *"])
    assert "CI is set" not in result.stdout.str()


@pytest.mark.usefixtures("ci")
def test_suites_given_their_subject_another_way_run_under_ci(pytester: pytest.Pytester) -> None:
    """Overriding ``backend`` or parametrizing ``backend_url`` directly is not forgetting it."""
    result = _run(
        pytester,
        """
        import pytest
        from hivemem.builtin.memory_backend import MemoryBackend
        from hivemem.testing import BackendSuite

        class TestOwnBackend(BackendSuite):
            @pytest.fixture
            def backend(self, hivemem_runner):
                b = MemoryBackend("memory://")
                hivemem_runner.run(b.open())
                yield b
                hivemem_runner.run(b.close())

        @pytest.mark.parametrize("backend_url", ["memory://"])
        class TestParametrized(BackendSuite):
            pass
        """,
        "-k",
        "test_put_then_get",
    )
    result.assert_outcomes(passed=2)


# -- not_applicable tables ----------------------------------------------------------------

_TABLE = """
    import pytest
    from hivemem.testing import BackendSuite

    class TestTable(BackendSuite):
        not_applicable = {table}

        @pytest.fixture
        def backend_url(self):
            return "memory://"
"""


def test_not_applicable_with_an_unknown_test_is_a_collection_error(
    pytester: pytest.Pytester,
) -> None:
    table = '{"test_shared_between_clients": "private", "test_put_then_gte": "typo"}'
    result = _run(pytester, _TABLE.format(table=table), "--collect-only")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(
        [
            "*TestTable.not_applicable: 'test_put_then_gte' is not a test of TestTable"
            " (did you mean 'test_put_then_get'?)*"
        ]
    )
    assert "'test_shared_between_clients'" not in result.stdout.str()  # that one is fine


@pytest.mark.parametrize("reason", ['""', '"  "', "None", "1"])
def test_not_applicable_needs_a_reason(pytester: pytest.Pytester, reason: str) -> None:
    table = f'{{"test_put_then_get": {reason}}}'
    result = _run(pytester, _TABLE.format(table=table), "--collect-only")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(
        ["*TestTable.not_applicable: 'test_put_then_get' needs a reason (a non-empty string)*"]
    )


def test_not_applicable_must_be_a_dict(pytester: pytest.Pytester) -> None:
    result = _run(pytester, _TABLE.format(table='["test_put_then_get"]'), "--collect-only")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["*TestTable.not_applicable must be a dict*not list*"])


def test_a_valid_not_applicable_deselects_exactly_its_tests(pytester: pytest.Pytester) -> None:
    table = '{"test_put_then_get": "checked elsewhere", "test_get_missing_is_none": "too"}'
    result = _run(pytester, _TABLE.format(table=table), "--collect-only", "-q")
    assert result.ret == pytest.ExitCode.OK
    collected = {line.rpartition("::")[2] for line in result.outlines if "::" in line}
    assert "test_versions_grow_by_one" in collected
    assert not {"test_put_then_get", "test_get_missing_is_none"} & collected
    assert result.parseoutcomes()["deselected"] == 2
    result.stdout.fnmatch_lines(
        ["hivemem kit: deselected as not applicable: 1 x checked elsewhere; 1 x too"]
    )


# -- modules another plugin provides ------------------------------------------------------


def test_require_module_returns_an_installed_module() -> None:
    assert require_module("json") is sys.modules["json"]


@pytest.mark.usefixtures("ci")
def test_require_module_fails_under_ci() -> None:
    assert in_ci()
    with pytest.raises(pytest.fail.Exception, match=f"needs {ABSENT}, which is not installed"):
        require_module(ABSENT)
    with pytest.raises(pytest.fail.Exception, match="CI is set"):
        skip_or_fail("anything")


@pytest.mark.usefixtures("no_ci")
def test_require_module_skips_outside_ci() -> None:
    assert not in_ci()
    with pytest.raises(pytest.skip.Exception, match=f"needs {ABSENT}, which is not installed"):
        require_module(ABSENT)
    with pytest.raises(pytest.skip.Exception, match="plugin absent"):
        require_module(f"{ABSENT}.sub", reason="plugin absent")


@pytest.mark.usefixtures("no_ci")
def test_require_module_never_hides_a_broken_module(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An installed module whose own import fails is an error, not a missing plugin."""
    pytester.makepyfile(hmkit_broken_module=f"import {ABSENT}\n")
    monkeypatch.syspath_prepend(str(pytester.path))
    with pytest.raises(ModuleNotFoundError, match=ABSENT):
        require_module("hmkit_broken_module")


_MODULE_LEVEL = f"""
    from hivemem.testing import require_module

    absent = require_module("{ABSENT}")

    def test_uses_it():
        pass
"""

_MARKED = f"""
    import pytest

    @pytest.mark.hivemem_requires("json", "{ABSENT}")
    def test_needs_both():
        pass

    @pytest.mark.hivemem_requires("json")
    def test_needs_json():
        pass
"""


@pytest.mark.usefixtures("ci")
def test_module_level_requirement_fails_collection_under_ci(pytester: pytest.Pytester) -> None:
    result = _run(pytester, _MODULE_LEVEL)
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines([f"*needs {ABSENT}, which is not installed (CI is set*"])


@pytest.mark.usefixtures("no_ci")
def test_module_level_requirement_skips_the_module_outside_ci(pytester: pytest.Pytester) -> None:
    result = _run(pytester, _MODULE_LEVEL)
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines([f"SKIPPED *needs {ABSENT}, which is not installed"])


@pytest.mark.usefixtures("ci")
def test_requires_marker_fails_under_ci(pytester: pytest.Pytester) -> None:
    result = _run(pytester, _MARKED, "--strict-markers")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines([f"ERROR *test_needs_both - Failed: needs {ABSENT}*CI is set*"])


@pytest.mark.usefixtures("no_ci")
def test_requires_marker_skips_outside_ci(pytester: pytest.Pytester) -> None:
    result = _run(pytester, _MARKED, "--strict-markers")
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines([f"SKIPPED *needs {ABSENT}, which is not installed"])
