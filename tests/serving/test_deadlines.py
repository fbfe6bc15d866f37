import threading
import time

from serving.deadlines import Deadlines


def test_a_request_finishing_in_time_owns_its_answer_and_nothing_expires():
    expired = []
    deadlines = Deadlines(timeout_s=0.2)
    try:
        ticket = deadlines.start(lambda: expired.append(True))
        assert ticket.finish() is True
        time.sleep(0.4)
        assert expired == []
    finally:
        deadlines.close()


def test_a_request_past_its_deadline_is_answered_by_the_watchdog_once():
    answered = threading.Event()
    calls = []
    deadlines = Deadlines(timeout_s=0.2)
    try:
        # Before start(): taken after it, a pause between the two would shorten the wait measured.
        started = time.monotonic()
        ticket = deadlines.start(lambda: (calls.append(time.monotonic()), answered.set()))
        assert answered.wait(5)
        assert calls[0] - started >= 0.2
        assert ticket.finish() is False  # the late work must not answer again
        time.sleep(0.1)
        assert len(calls) == 1
    finally:
        deadlines.close()


def test_a_failing_expiry_does_not_stop_the_watchdog():
    answered = threading.Event()
    deadlines = Deadlines(timeout_s=0.1)
    try:
        deadlines.start(lambda: 1 / 0)
        deadlines.start(answered.set)
        assert answered.wait(5)
    finally:
        deadlines.close()
