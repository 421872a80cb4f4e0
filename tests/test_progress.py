"""The package's one progress bar (`attnrec_tf.progress`): a terminal, a log, and silence."""

from __future__ import annotations

import io

from attnrec_tf.progress import progress_bar


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_log_gets_plain_lines_and_one_last_line() -> None:
    out = io.StringIO()
    with progress_bar(10, out, desc="work", unit=" steps", interval=0) as bar:
        for _ in range(5):
            bar.update(2)
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue() and all(line.startswith("work: ") for line in lines)
    assert lines[-1].startswith("work: 100%|") and "| 10/10 [" in lines[-1]
    assert lines[-1] != lines[-2]  # the last line is not written twice
    assert "steps/s]" in lines[-1]


def test_a_log_gets_no_line_before_the_interval_and_then_the_last() -> None:
    out = io.StringIO()
    with progress_bar(10, out, desc="work", interval=3600) as bar:
        bar.update(4)
        bar.update(6)
    assert out.getvalue().count("\n") == 1 and out.getvalue().startswith("work: 100%|")


def test_an_unknown_total_counts_with_the_unit() -> None:
    out = io.StringIO()
    with progress_bar(0, out, desc="download", unit="B", unit_scale=True, interval=3600) as bar:
        bar.update(2_000_000)
    assert out.getvalue().startswith("download: 2.00MB [")


def test_a_terminal_gets_a_bar_redrawn_in_place() -> None:
    out = _Terminal()
    with progress_bar(4, out, desc="work") as bar:
        bar.update(4)
    text = out.getvalue()
    frames = text.split("\r")[1:]
    assert frames and all(frame.startswith("work: ") for frame in frames)
    assert frames[-1].startswith("work: 100%|") and text.endswith("\n")


def test_no_stream_is_silent() -> None:
    with progress_bar(4, None, desc="work") as bar:
        bar.update(4)  # nothing to assert but that it runs: there is nowhere to write
