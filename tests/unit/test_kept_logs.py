"""The kept tail's bound (whole lines within 64 KiB), a provider's cut window, and which lines are new."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from jobsync.domain.logs import KEPT_LOG_BYTES, PROVIDER_LOG_WINDOW, last_lines, log_lines, log_tail, new_lines
from jobsync.providers.replicate_mapping import LOG_LIMIT


def test_the_window_is_what_the_provider_mapping_hands_over():
    assert PROVIDER_LOG_WINDOW == LOG_LIMIT


def test_a_short_log_is_kept_whole():
    tail = log_tail("Loading\r\nStep 1/2\rStep 2/2\n")
    assert tail.lines == ("Loading", "Step 1/2", "Step 2/2") and tail.has_older is False


def test_the_tail_keeps_the_newest_whole_lines_within_the_byte_budget():
    tail = log_tail("aaaa\nbbbb\ncccc", max_bytes=9)
    assert tail.lines == ("bbbb", "cccc") and tail.has_older is True
    assert log_tail("aaaa\nbbbb\ncccc", max_bytes=8).lines == ("cccc",)


def test_the_budget_counts_utf8_bytes_not_characters():
    tail = log_tail("ééé\nééé", max_bytes=10)  # each line is 6 bytes
    assert tail.lines == ("ééé",)


def test_a_single_line_longer_than_the_budget_keeps_its_head():
    assert log_tail("Step 1/2 " + "x" * 100, max_bytes=12).lines == ("Step 1/2 xxx",)


def test_a_cut_window_drops_its_first_fragment_and_says_older_lines_exist():
    window = ("x" * 30 + "\n" + "Step 9/10\n") * (PROVIDER_LOG_WINDOW // 41 + 1)
    window = window[-PROVIDER_LOG_WINDOW:]
    whole = log_lines(window)
    assert whole.has_older is True
    assert whole.lines[0] in ("x" * 30, "Step 9/10")  # a whole line, never the fragment
    assert log_lines("Step 1/2").has_older is False


@given(st.text(max_size=3000), st.integers(min_value=1, max_value=500))
def test_the_tail_always_respects_its_bound_and_is_the_newest_lines(text, budget):
    tail = log_tail(text, max_bytes=budget)
    assert len(tail.text.encode("utf-8")) <= budget
    everything = log_lines(text).lines
    if len(tail.lines) > 1 or (tail.lines and tail.lines[0] == everything[-1]):
        assert tail.lines == everything[len(everything) - len(tail.lines) :]


def test_the_default_budget_is_64_kib():
    assert KEPT_LOG_BYTES == 65_536


def test_new_lines_are_those_after_the_last_lines_seen():
    seen = ("a", "b", "c")
    assert new_lines(seen, ("a", "b", "c", "d", "e")) == ["d", "e"]
    assert new_lines(seen, ("b", "c", "d")) == ["d"]  # the window moved on
    assert new_lines(seen, seen) == []
    assert new_lines((), ("a",)) == ["a"]
    assert new_lines(seen, ("x", "y")) == ["x", "y"]  # nothing in common: all of it is new


def test_last_lines():
    assert last_lines(("a", "b", "c"), 2) == ["b", "c"]
    assert last_lines(("a",), 5) == ["a"]
