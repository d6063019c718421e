"""Pipeline steps in worker processes (the demo's signals and network, issue 13): a value, an
exception and a warning come back as if the step had run here, and a step still running when the
demo stops is ended."""

from __future__ import annotations

import operator
import time
import warnings

import pytest

from ketaweight.pipelines.background import Background, Inline


@pytest.mark.parametrize("kind", [Background, Inline])
def test_a_step_returns_its_value_raises_its_error_and_its_warnings_here(kind):
    steps = [kind(operator.add, 2, 3), kind(operator.truediv, 1, 0), kind(warnings.warn, "from the step", UserWarning)]
    try:
        assert steps[0].result() == 5
        with pytest.raises(ZeroDivisionError):
            steps[1].result()
        with pytest.warns(UserWarning, match="from the step"):
            assert steps[2].result() is None
    finally:
        for step in steps:
            step.stop()


def test_a_step_still_running_is_ended_when_the_demo_stops():
    step = Background(time.sleep, 120)
    started = time.monotonic()
    step.stop()
    assert time.monotonic() - started < 30
    assert not step._process.is_alive() and step._process.exitcode != 0


def test_a_worker_ignores_ctrl_c_from_its_first_instruction():
    """A Ctrl-C at the terminal reaches every process of the group; a worker still importing printed a
    traceback. The worker starts with SIGINT ignored (the parent ends it) and the parent's handler is back."""
    import signal

    before = signal.getsignal(signal.SIGINT)
    step = Background(signal.getsignal, signal.SIGINT)
    try:
        assert step.result() == signal.SIG_IGN
    finally:
        step.stop()
    assert signal.getsignal(signal.SIGINT) is before
