"""The log-line parser behind inline progress: the contract's stage rules, progress patterns and limits."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jobsync.domain.progress import (
    InlineProgress,
    keep_tail,
    parse_progress,
    split_log_lines,
    truncate_line,
)

FLUX_BAR = "flux_train_replicate:  83%|████████▎ | 2482/3000 [43:27<09:04,  1.05s/it, lr: 4.0e-04 loss: 2.472e-01]"


# --- splitting and the stored tail -------------------------------------------------


def test_split_log_lines_splits_at_newline_and_carriage_return_and_drops_blank_lines() -> None:
    text = "first  \r\n\n  \r 10%|#| 1/10\r 20%|##| 2/10\nlast\t"
    assert split_log_lines(text) == ["first", " 10%|#| 1/10", " 20%|##| 2/10", "last"]


@pytest.mark.parametrize("text", [None, "", "\n\r\n", "   \t  \n  "])
def test_split_log_lines_of_nothing_is_empty(text: str | None) -> None:
    assert split_log_lines(text) == []


def test_split_log_lines_removes_terminal_colour_codes() -> None:
    assert split_log_lines("\x1b[32mStep 3/4\x1b[0m\n\x1b[0m") == ["Step 3/4"]


def test_keep_tail_keeps_the_newest_lines_within_the_line_limit() -> None:
    text = "\n".join(f"line {i}" for i in range(500))
    tail = keep_tail(text, max_lines=3)
    assert tail == "line 497\nline 498\nline 499"


def test_keep_tail_keeps_the_newest_lines_within_the_character_limit() -> None:
    text = "\n".join(["a" * 10, "b" * 10, "c" * 10])
    # 21 characters fit "bbbbbbbbbb\ncccccccccc" exactly; the oldest line must go.
    assert keep_tail(text, max_chars=21) == "b" * 10 + "\n" + "c" * 10
    assert keep_tail(text, max_chars=20) == "c" * 10


def test_keep_tail_cuts_a_single_overlong_line_to_the_budget() -> None:
    assert keep_tail("Step 1/2 " + "x" * 100, max_chars=12) == "Step 1/2 xxx"


def test_keep_tail_of_nothing_is_empty() -> None:
    assert keep_tail(None) == ""
    assert keep_tail("\r\n  \n") == ""
    assert keep_tail("abc", max_lines=0) == ""


def test_keep_tail_replaces_lone_surrogates_so_the_tail_encodes() -> None:
    tail = keep_tail("ok \ud800 half\nemoji \ud83d\ude00 pair")
    tail.encode("utf-8")  # must not raise
    assert "\ufffd" in tail
    assert "\U0001f600" in tail  # a proper pair survives as its character


def test_keep_tail_collapses_carriage_return_rewrites_into_lines() -> None:
    assert keep_tail("a\rb\r\nc") == "a\nb\nc"


@given(st.text(), st.integers(min_value=1, max_value=50), st.integers(min_value=1, max_value=500))
def test_keep_tail_always_respects_both_bounds(text: str, max_lines: int, max_chars: int) -> None:
    tail = keep_tail(text, max_lines=max_lines, max_chars=max_chars)
    assert len(tail) <= max_chars
    assert len(tail.split("\n")) <= max_lines
    tail.encode("utf-8")
    lines = split_log_lines(text)
    if lines and len(lines[-1]) <= max_chars:
        assert tail.split("\n")[-1] == lines[-1]


# --- last_log ----------------------------------------------------------------------


def test_truncate_line_cuts_long_lines_to_exactly_80_with_an_ellipsis() -> None:
    line = "x" * 81
    cut = truncate_line(line)
    assert cut == "x" * 77 + "..."
    assert len(cut) == 80


def test_truncate_line_keeps_a_line_of_exactly_80() -> None:
    assert truncate_line("y" * 80) == "y" * 80


def test_last_log_is_the_newest_line_cut_to_80() -> None:
    long_line = "Step 10/20 " + "z" * 200
    result = parse_progress("older line\n" + long_line + "\n\n   \n")
    assert result.last_log == long_line[:77] + "..."
    assert len(result.last_log) == 80


def test_last_log_of_exactly_80_characters_is_kept_whole() -> None:
    line = "w" * 80
    assert parse_progress(line).last_log == line


# --- stage rules ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "stage"),
    [
        ("Preprocessing dataset", "Preprocessing"),
        ("LOADING model weights", "Preprocessing"),
        ("Warming up the scheduler", "Warmup"),
        ("lr warmup finished", "Warmup"),
        ("Running validation prompts", "Validation"),
        ("validating on 4 images", "Validation"),
        ("Writing CHECKPOINT to disk", "Saving checkpoint"),
        ("step 5 done", "Training"),
        ("starting Epoch 3", "Training"),
        (" 45%|████▌     | 450/1000 [05:12<06:21, 1.44it/s]", "Training"),
        ("nothing to see here", None),
    ],
)
def test_each_stage_rule(line: str, stage: str | None) -> None:
    assert parse_progress(line).stage == stage


@pytest.mark.parametrize(
    ("line", "stage"),
    [
        ("Validation checkpoint saved", "Validation"),
        ("loading checkpoint", "Preprocessing"),
        ("Loading 3 steps", "Preprocessing"),
        ("warmup step 10/100", "Warmup"),
        ("checkpoint at step 500", "Saving checkpoint"),
        ("Validation after epoch 2/10", "Validation"),
        ("Loading checkpoint shards:  50%|█████     | 1/2 [00:03<00:03]", "Preprocessing"),
    ],
)
def test_within_a_line_the_first_rule_in_contract_order_wins(line: str, stage: str) -> None:
    assert parse_progress(line).stage == stage


def test_newest_matching_line_decides_the_stage_even_with_newer_unmatched_lines() -> None:
    log = "Loading model\nStep 10/100\nRunning validation\nsaved image to out.png\nloss looks fine"
    result = parse_progress(log)
    assert result.stage == "Validation"
    assert result.last_log == "loss looks fine"
    # Progress is decided separately, by the newest line that carries a pattern.
    assert result.progress == 10.0


def test_an_older_line_never_overrides_a_newer_matching_one() -> None:
    assert parse_progress("Validation run\nStep 20/100").stage == "Training"
    assert parse_progress("Step 20/100\nValidation run").stage == "Validation"


def test_loading_steps_prose_carries_no_progress() -> None:
    result = parse_progress("Step 5/10\nLoading 3 steps")
    assert result.stage == "Preprocessing"
    assert result.progress == 50.0  # from the older step line, not "3 steps"


# --- progress ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "progress"),
    [
        ("Step 1500/5000 - loss: 0.0234", 30.0),
        ("[TRAINING] Step 1500/5000 (30.0%) lr=1e-4", 30.0),
        ("step: 1500/5000", 30.0),
        ("global_step=3/12", 25.0),
        ("Epoch 3/4", 75.0),
        ("epoch [1/3]", 33.33),
        ("Step 1/3", 33.33),
        ("Step 2/3", 66.67),
    ],
)
def test_step_and_epoch_patterns(line: str, progress: float) -> None:
    result = parse_progress(line)
    assert result.progress == progress
    assert result.stage == "Training"
    assert result.eta_seconds is None


def test_simpletuner_line() -> None:
    result = parse_progress("2024-09-10 05:10:35 INFO Step 1500/5000 - loss: 0.0234")
    assert result == InlineProgress(
        stage="Training",
        last_log="2024-09-10 05:10:35 INFO Step 1500/5000 - loss: 0.0234",
        progress=30.0,
        eta_seconds=None,
    )


def test_step_is_preferred_over_epoch_on_the_same_line() -> None:
    assert parse_progress("Epoch 2/10 Step 150/500").progress == 30.0
    assert parse_progress("Step 150/500 Epoch 2/10").progress == 30.0


def test_step_or_epoch_count_is_preferred_over_a_bar_on_the_same_line() -> None:
    # The bar here counts one epoch's batches; the epoch count is the overall figure.
    result = parse_progress("Epoch 2/10:  90%|█████████ | 90/100 [01:00<00:06, 1.5it/s]")
    assert result.progress == 20.0
    assert result.eta_seconds is None


def test_tqdm_bar_uses_counts_not_the_rounded_percentage() -> None:
    result = parse_progress(" 45%|████▌     | 449/1000 [05:12<06:21, 1.44it/s]")
    assert result.progress == 44.9
    assert result.eta_seconds == 381


def test_tqdm_rewrites_joined_by_carriage_return_the_newest_segment_decides() -> None:
    log = (
        "Loading model\n"
        "  0%|          | 0/1000 [00:00<?, ?it/s]"
        "\r 10%|█         | 100/1000 [01:00<09:00, 1.67it/s]"
        "\r 45%|████▌     | 449/1000 [05:12<06:21, 1.44it/s]"
    )
    result = parse_progress(log)
    assert result.progress == 44.9
    assert result.eta_seconds == 381
    assert result.stage == "Training"
    assert result.last_log == " 45%|████▌     | 449/1000 [05:12<06:21, 1.44it/s]"


def test_flux_bar_with_a_description_in_front() -> None:
    result = parse_progress("flux_train_replicate: starting\r" + FLUX_BAR)
    assert result.progress == 82.73
    assert result.stage == "Training"
    assert result.eta_seconds == 9 * 60 + 4
    assert result.last_log == FLUX_BAR[:77] + "..."


def test_eta_with_hours() -> None:
    assert parse_progress(" 10%|█ | 10/100 [00:07<1:02:03, 1.4it/s]").eta_seconds == 3723


def test_eta_unknown_at_the_start_of_a_bar() -> None:
    result = parse_progress("  0%|          | 0/100 [00:00<?, ?it/s]")
    assert result.progress == 0.0
    assert result.eta_seconds is None


def test_eta_only_when_the_deciding_progress_line_is_a_bar() -> None:
    log = " 50%|█████     | 50/100 [00:10<00:10, 5it/s]\nStep 60/100 - loss 0.1"
    result = parse_progress(log)
    assert result.progress == 60.0
    assert result.eta_seconds is None


def test_progress_is_clamped_to_100() -> None:
    assert parse_progress("step 12/10").progress == 100.0


def test_zero_total_gives_no_progress() -> None:
    assert parse_progress("step 0/0").progress is None


def test_newest_progress_line_decides_even_with_newer_lines_without_a_pattern() -> None:
    result = parse_progress("Step 1/4\nStep 3/4\nSaving checkpoint to /src/out\ndone")
    assert result.progress == 75.0
    assert result.stage == "Saving checkpoint"


def test_a_line_without_progress_pattern_gives_none() -> None:
    assert parse_progress("Preprocessing 12 images").progress is None


# --- degenerate input -------------------------------------------------------------


@pytest.mark.parametrize("text", [None, "", "   ", "\n\r\n \t\r"])
def test_empty_logs_give_all_none(text: str | None) -> None:
    assert parse_progress(text) == InlineProgress(stage=None, last_log=None, progress=None, eta_seconds=None)


def test_lone_surrogates_and_replacement_characters_do_not_crash() -> None:
    result = parse_progress("bad \udc80 bytes\nStep 1/2 \ufffd\ufffd \ud800")
    assert result.progress == 50.0
    assert result.stage == "Training"
    result.last_log.encode("utf-8")  # storable and JSON-encodable


def test_absurdly_long_numbers_do_not_crash() -> None:
    result = parse_progress("step " + "9" * 5000 + "/" + "9" * 5000)
    assert result.progress is None or 0 <= result.progress <= 100


@given(st.text())
def test_any_text_gives_bounded_progress_and_last_log(text: str) -> None:
    result = parse_progress(text)
    assert result.progress is None or 0.0 <= result.progress <= 100.0
    assert result.last_log is None or len(result.last_log) <= 80
    assert result.stage in {None, "Preprocessing", "Warmup", "Training", "Validation", "Saving checkpoint"}


_LOG_PIECES = st.sampled_from(
    ["Step ", "step: ", "Epoch ", "%|", "| ", "/", "0", "7", "12", "1000", "[", "<", ":", "05", "\r", "\n", " ", "█"]
)


@given(st.lists(_LOG_PIECES, max_size=40).map("".join))
def test_log_like_text_gives_bounded_progress_and_eta(text: str) -> None:
    # Plain st.text() rarely forms a pattern; these pieces do, in odd combinations.
    result = parse_progress(text)
    assert result.progress is None or 0.0 <= result.progress <= 100.0
    assert result.eta_seconds is None or result.eta_seconds >= 0
    assert result.eta_seconds is None or result.progress is not None
