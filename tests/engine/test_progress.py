"""engine.progress: the tqdm training bar on a terminal and on a pipe, and the counter callback."""

from __future__ import annotations

import io
import re
import time

from engine.progress import ProgressBar, counter

VALUES = {"loss": 0.5, "accuracy": 0.875, "lr": 1e-3, "images_per_sec": 123.4}


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_pipe_gets_one_line_per_update_with_every_value():
    out = io.StringIO()
    bar = ProgressBar(1000, start_step=50, stream=out)
    time.sleep(0.2)
    bar.update(60, VALUES)
    bar.message("step 60 validation: accuracy 0.9")
    bar.update(70, VALUES | {"loss": 0.25})
    bar.close()
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue() and len(lines) == 3
    assert "60/1000 steps" in lines[0] and "loss 0.5000" in lines[0] and "acc 0.875" in lines[0]
    assert "lr 1.00e-03" in lines[0] and "123 img/s" in lines[0]
    assert lines[1] == "step 60 validation: accuracy 0.9"
    assert "70/1000 steps" in lines[2] and "loss 0.2500" in lines[2]
    # The rate counts from the resumed step: 10 steps in >= 0.2 s leave 940 steps >= 18.8 s.
    eta = re.search(r"ETA (\d+):(\d+)", lines[0])
    assert eta is not None and 18 <= int(eta[1]) * 60 + int(eta[2]) < 3600


def test_a_pipe_is_throttled_but_gets_the_last_line():
    out = io.StringIO()
    bar = ProgressBar(10, stream=out, every_s=3600)
    for step in range(1, 11):
        bar.update(step, {})
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 and "1/10" in lines[0] and "10/10" in lines[1]


def test_a_terminal_gets_a_redrawn_bar_and_messages_on_their_own_lines():
    out = Terminal()
    bar = ProgressBar(100, stream=out)
    bar.update(10, VALUES)
    bar.message("resumed at step 10")
    bar.update(20, VALUES)
    bar.close()
    text = out.getvalue()
    assert "\r" in text and "20/100 steps" in text and "loss 0.5000" in text
    assert "\rresumed at step 10\n" in text and text.endswith("\n")


def test_disabled_writes_nothing():
    out = io.StringIO()
    bar = ProgressBar(10, stream=out, enabled=False)
    bar.update(5, VALUES)
    bar.message("hidden")
    bar.close()
    assert out.getvalue() == ""


def test_counter_reports_done_of_total_and_starts_again_for_a_new_sweep():
    out = io.StringIO()
    report = counter("occlusion", "occluded forwards", stream=out, every_s=0)
    for done in (4, 8):
        report(done, 8)
    report(3, 3)
    lines = out.getvalue().splitlines()
    assert [re.search(r"(\d+)/(\d+) occluded forwards", line).groups() for line in lines] == [
        ("4", "8"),
        ("8", "8"),
        ("3", "3"),
    ]
    assert all(line.startswith("occlusion:") for line in lines)
