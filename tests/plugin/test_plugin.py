"""The pytest plugin, tested with pytester in subprocesses against a real service."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.conftest import Service, ledger_entries, proc_state, wait_until

# The inner pytest loads only the chaoslab plugin of the venv's: the others (hypothesis,
# schemathesis, xdist, anyio) cost about 3 s of CPU per start and take no part in these tests.
INNER = (
    "-p",
    "no:cacheprovider",
    "-p",
    "no:hypothesispytest",
    "-p",
    "no:schemathesis",
    "-p",
    "no:xdist",
    "-p",
    "no:xdist.looponfail",
    "-p",
    "no:anyio",
)


def assert_untouched(svc: Service, state: Path) -> None:
    assert svc.alive()
    assert wait_until(lambda: proc_state(svc.pid) != "T")
    assert ledger_entries(state) == []


def test_fault_fixtures_revert_on_pass_and_on_failure(
    pytester: pytest.Pytester, service: Service, state_dir: Path
) -> None:
    pytester.makepyfile(f"""
        import pathlib, time, pytest

        def state():
            t = pathlib.Path("/proc/{service.pid}/stat").read_text()
            return t[t.rindex(")") + 2]

        @pytest.mark.chaos_process
        def test_paused_inside_the_block(service_failure):
            with service_failure({service.pid}, mode="pause"):
                time.sleep(0.05)
                assert state() == "T"
            time.sleep(0.05)
            assert state() != "T"

        def test_fails_inside_the_block(service_failure):
            with service_failure({service.pid}, mode="pause"):
                assert False, "the test failed while the service was paused"

        def test_duration_ends_the_fault_early(service_failure):
            with service_failure({service.pid}, mode="pause", duration=0.2):
                time.sleep(0.05)
                assert state() == "T"
                time.sleep(0.5)
                assert state() != "T"
    """)
    result = pytester.runpytest_subprocess(*INNER)
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["*the test failed while the service was paused*"])
    assert_untouched(service, state_dir)


def test_fault_fixtures_revert_on_keyboard_interrupt(
    pytester: pytest.Pytester, service: Service, state_dir: Path
) -> None:
    pytester.makepyfile(f"""
        import time

        def test_interrupted(service_failure):
            with service_failure({service.pid}, mode="pause"):
                raise KeyboardInterrupt
    """)
    result = pytester.runpytest_subprocess(*INNER)
    assert result.ret == pytest.ExitCode.INTERRUPTED
    assert_untouched(service, state_dir)


def test_dry_run_plans_and_injects_nothing(
    pytester: pytest.Pytester, service: Service, state_dir: Path
) -> None:
    pytester.makepyfile(f"""
        def test_kill(service_failure):
            with service_failure({service.pid}, mode="kill"):
                raise AssertionError("the block must not run in a dry run")
    """)
    result = pytester.runpytest_subprocess(*INNER, "--chaos-dry-run", "-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines([f"*chaos dry run: would inject process.kill on *{service.pid}*"])
    assert_untouched(service, state_dir)


def test_markers_select_tests(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
        import pytest

        @pytest.mark.chaos_database
        def test_db(): pass

        @pytest.mark.chaos_network
        def test_net(): pass

        def test_plain(): pass
    """)
    result = pytester.runpytest_subprocess(*INNER, "--strict-markers", "-m", "chaos_database")
    result.assert_outcomes(passed=1, deselected=2)
    result = pytester.runpytest_subprocess(*INNER, "--strict-markers", "-m", "chaos")
    result.assert_outcomes(passed=2, deselected=1)


def test_load_and_assertions_carry_the_figures(
    pytester: pytest.Pytester, service: Service, state_dir: Path, tmp_path: Path
) -> None:
    pytester.makepyfile(f"""
        import time
        from chaoslab.testing.assertions import assert_error_rate, assert_latency, assert_recovers_within

        def test_pause_under_load(chaos_load, service_failure):
            load = chaos_load(url="http://127.0.0.1:{service.port}/items", method="POST", rate=50,
                              timeout=0.5, body={{"id": "{{{{key}}}}"}}, ack={{"status": [201], "id": "$.id"}})
            time.sleep(1.5)
            with service_failure({service.pid}, mode="pause", duration=1.5):
                time.sleep(1.5)
            ttr = load.session.wait_for_recovery(30)  # until the data show it, however busy
            load.stop()
            assert ttr is not None and abs(ttr - assert_recovers_within(load.session, 30.0)) < 1.01
            # generous bounds: this 2-core machine is shared; the point is the last message
            assert assert_error_rate(load.session, "baseline", 0.5) <= 0.5
            assert_latency(load.session, "baseline", 1.0)
            assert_error_rate(load.session, "fault", 0.01)
    """)
    reports = tmp_path / "reports"
    result = pytester.runpytest_subprocess(*INNER, f"--chaos-report={reports}")
    result.assert_outcomes(failed=1)
    # the last assertion fails, and says what was measured
    result.stdout.fnmatch_lines(
        ["*AssertionError: error rate in fault is *% (of which timeouts *), above 1.00%*"]
    )
    run = next(reports.iterdir())
    for name in ("journal.jsonl", "history.jsonl", "report.md", "report.html"):
        assert (run / name).exists(), name
    assert_untouched(service, state_dir)
