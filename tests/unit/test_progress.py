"""Progress lines as a cluster's job log shows them: count, rate and a readable ETA."""

import time

import pytest

from synth.progress import Progress, duration_text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (44.6, "45s"), (60, "1m 00s"), (725, "12m 05s"), (3600, "1h 00m"), (11220, "3h 07m")],
)
def test_duration_text(seconds, text):
    assert duration_text(seconds) == text


def test_log_line_has_rate_and_eta_from_the_second_update(capsys):
    progress = Progress("train", total=1000, unit="steps", interval_s=0.0)
    progress.update(completed=50)  # the first update only sets the rate's baseline (start-up excluded)
    first = capsys.readouterr().err.strip()
    assert first == "[synth] train: 50/1,000 steps (5%)"
    time.sleep(0.2)
    progress.update(completed=100, extra="loss 0.5")
    second = capsys.readouterr().err.strip()
    assert second.startswith("[synth] train: 100/1,000 steps (10%) ")
    assert " steps/s loss 0.5 eta " in second
    eta = second.rsplit("eta ", 1)[1]  # 900 steps left at about 250 steps/s: a few seconds
    assert eta.endswith("s") and "h" not in eta, second
