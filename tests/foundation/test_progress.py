"""tools/progress.py: a progress line rewritten in place on a terminal, whole lines elsewhere."""

import io

from tools.progress import CLEAR_TO_END, ProgressLine


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_file_or_pipe_gets_whole_lines_at_most_every_few_seconds() -> None:
    out, clock = io.StringIO(), Clock()
    line = ProgressLine(out, every_s=0.5, every_s_piped=5.0, clock=clock)
    for second, checked in ((1, 1000), (5, 2000), (6, 3000), (12, 4000)):
        clock.now = second
        line.show(f"[audit] {checked:,} events checked")
    line.finish("[audit] done")
    assert "\r" not in out.getvalue()  # before: "\r" updates piled up on one endless line
    assert out.getvalue().splitlines() == [
        "[audit] 2,000 events checked",  # 1 s in: too soon; 5 s: shown; 6 s: too soon again
        "[audit] 4,000 events checked",
        "[audit] done",
    ]


def test_a_terminal_gets_one_line_rewritten_in_place_then_ended() -> None:
    out, clock = Terminal(), Clock()
    line = ProgressLine(out, every_s=0.5, clock=clock)
    for tick in range(1, 5):
        clock.now = tick * 0.3  # every other update is within half a second of the last one
        line.show(f"[import] {tick}/4 events")
    assert (
        out.getvalue() == f"\r{CLEAR_TO_END}[import] 2/4 events\r{CLEAR_TO_END}[import] 4/4 events"
    )
    line.finish()
    assert out.getvalue().endswith("events\n")
    line.finish()  # nothing left to end: no blank line
    assert out.getvalue().count("\n") == 1


def test_nothing_shown_on_a_terminal_means_nothing_to_end() -> None:
    out = Terminal()
    ProgressLine(out, clock=Clock()).finish()
    assert out.getvalue() == ""
