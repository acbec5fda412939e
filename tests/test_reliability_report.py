"""The fault tally behind docs/reliability.md: one outcome per run, rows that add up."""

from __future__ import annotations

import pytest

from .reliability_report import check_outcomes, render
from .test_faults import Tally
from .test_faults_extra import _merge


def test_each_run_counts_once_with_one_outcome() -> None:
    tally = Tally()
    tally.survive("read", b"abc", b"abc")
    tally.survive("read", b"abcd", b"abXd")
    tally.raise_clean("read")
    tally.raise_clean("put_if_none_match")
    tally.check_bytes(b"xyz", b"xyz")  # the raised run's bytes are checked, not counted as a run
    data = tally.as_dict()
    assert data["operations"] == {"put_if_none_match": 1, "read": 3}
    assert data["survived"] == {"read": 2}
    assert data["raised_cleanly"] == {"put_if_none_match": 1, "read": 1}
    assert data["operations_total"] == data["survived_total"] + data["raised_cleanly_total"] == 4
    assert (data["bytes_checked"], data["bytes_lost"]) == (10, 1)
    check_outcomes(data)
    text = render(data)
    assert "| put_if_none_match | 1 | 0 | 1 |" in text
    assert "| read | 3 | 2 | 1 |" in text
    assert "| **total** | **4** | **2** | **2** |" in text


def test_merged_module_tallies_still_add_up() -> None:
    first, second = Tally(), Tally()
    first.survive("sync", b"a", b"a")
    second.survive("sync", b"b", b"b")
    second.raise_clean("sync")
    merged = _merge(first.as_dict(), second.as_dict())
    assert (merged["operations"]["sync"], merged["survived"]["sync"], merged["raised_cleanly"]["sync"]) == (
        3,
        2,
        1,
    )
    check_outcomes(merged)


def test_a_tally_that_does_not_add_up_is_refused() -> None:
    double = {"operations": {"sync": 32}, "survived": {"sync": 32}, "raised_cleanly": {"sync": 2}}
    with pytest.raises(ValueError, match=r"sync: 32 runs != 32 survived \+ 2 raised"):
        render(double)
    with pytest.raises(ValueError, match="put_if_none_match"):
        check_outcomes({"operations": {"put_if_none_match": 1}, "survived": {"put_if_none_match": 1},
                        "raised_cleanly": {"put_if_none_match": 1}})  # fmt: skip
