"""The owner records themselves (faults/settings.py), on a plain file as the setting: any order
of holds and releases, with a release repeated (a recover that was killed and run again),
leaves the newest holder's value in force and, after the last release, the original."""

from __future__ import annotations

import itertools
import json
import threading
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chaoslab.faults.settings import Owners, Setting, SettingGone


class FileSetting(Setting):
    def __init__(self, path: Path) -> None:
        self.path = path

    @property
    def key(self) -> str:
        return f"file:{self.path}"

    def read(self) -> Any:
        if not self.path.exists():
            raise SettingGone(str(self.path))
        return self.path.read_text()

    def write(self, value: Any) -> None:
        if not self.path.exists():
            raise SettingGone(str(self.path))
        self.path.write_text(str(value))


_numbers = itertools.count()


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(n=st.integers(1, 6), data=st.data())
def test_any_release_order_restores_the_original(
    tmp_path: Path, n: int, data: st.DataObject
) -> None:
    where = tmp_path / f"ex{next(_numbers)}"
    where.mkdir()
    target = where / "knob"
    target.write_text("original")
    owners = Owners(where / "owners")
    s = FileSetting(target)
    held: list[str] = []
    for i in range(n):
        owners.hold(s, f"h{i}", f"v{i}")
        held.append(f"h{i}")
        assert target.read_text() == f"v{i}"
    for h in data.draw(st.permutations(held)):
        owners.release(s, h)
        if data.draw(st.booleans()):
            owners.release(s, h)  # again, as a second recover would: no effect
        held.remove(h)
        expected = f"v{held[-1][1:]}" if held else "original"
        assert target.read_text() == expected
    assert list((where / "owners").glob("*.json")) == []


def test_a_value_may_depend_on_the_one_in_force(tmp_path: Path) -> None:
    target = tmp_path / "knob"
    target.write_text("10")
    owners = Owners(tmp_path / "owners")
    s = FileSetting(target)
    assert owners.hold(s, "a", lambda before: str(int(before) * 2)) == "10"
    assert owners.hold(s, "b", lambda before: str(int(before) + 1)) == "20"
    assert target.read_text() == "21"
    rec = json.loads(next((tmp_path / "owners").glob("*.json")).read_text())
    assert rec["original"] == "10" and [h["value"] for h in rec["holders"]] == ["20", "21"]


def test_a_failed_write_leaves_no_holder(tmp_path: Path) -> None:
    target = tmp_path / "knob"
    target.write_text("x")
    owners = Owners(tmp_path / "owners")

    class Refusing(FileSetting):
        def write(self, value: Any) -> None:
            if value == "bad":
                raise OSError(22, "Invalid argument")
            super().write(value)

    s = Refusing(target)
    try:
        owners.hold(s, "a", "bad")
    except OSError:
        pass
    assert target.read_text() == "x"
    assert list((tmp_path / "owners").glob("*.json")) == []


def test_a_gone_setting_is_forgotten(tmp_path: Path) -> None:
    target = tmp_path / "knob"
    target.write_text("x")
    owners = Owners(tmp_path / "owners")
    s = FileSetting(target)
    owners.hold(s, "a", "y")
    target.unlink()
    owners.release(s, "a")
    assert list((tmp_path / "owners").glob("*.json")) == []


def test_threads_holding_and_releasing_at_once(tmp_path: Path) -> None:
    target = tmp_path / "knob"
    target.write_text("original")
    owners = Owners(tmp_path / "owners")
    s = FileSetting(target)
    errors: list[BaseException] = []

    def work(k: int) -> None:
        try:
            for i in range(5):
                owners.hold(s, f"t{k}-{i}", f"{k}-{i}")
                owners.release(s, f"t{k}-{i}")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert target.read_text() == "original"
    assert list((tmp_path / "owners").glob("*.json")) == []
