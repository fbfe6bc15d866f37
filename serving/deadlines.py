"""Request deadlines kept by one watchdog thread, so a request runs on the thread that received it.

Handing each request to a worker pool only to wait on it with a timeout cost two thread wake-ups
a request (~0.3 ms on this 2-core VM, measured in-process). Instead the receiving thread does the
work and registers a :class:`Ticket`; the watchdog wakes every ``tick_s`` and, for a request
still running at its deadline, calls the ticket's ``on_expiry`` (which answers the client 504 and
closes the connection). The work itself cannot be stopped (TensorFlow has no cancel for a running
call): it runs on, abandoned, and whoever of the two finishes first owns the answer.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)
_LONGEST_TICK_S = 1.0
_TICKS_PER_TIMEOUT = 20


class Ticket:
    """One running request: ``finish()`` says whether it still owns its answer."""

    __slots__ = ("_deadlines", "deadline", "on_expiry")

    def __init__(self, deadlines: Deadlines, deadline: float, on_expiry: Callable[[], None]):
        self._deadlines = deadlines
        self.deadline = deadline
        self.on_expiry = on_expiry

    def finish(self) -> bool:
        """True if the request finished before the watchdog answered it (then it must answer);
        False if ``on_expiry`` has run or is running."""
        return self._deadlines._remove(self)


class Deadlines:
    """Tickets with a deadline ``timeout_s`` after they are taken, checked every ``tick_s``
    (a twentieth of the timeout, at most a second: a 30 s timeout fires within 30-31 s)."""

    def __init__(self, timeout_s: float):
        self.timeout_s = timeout_s
        self.tick_s = min(_LONGEST_TICK_S, timeout_s / _TICKS_PER_TIMEOUT)
        self._running: set[Ticket] = set()
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="deadlines", daemon=True)
        self._thread.start()

    def start(self, on_expiry: Callable[[], None]) -> Ticket:
        """A ticket for a request starting now; ``on_expiry`` runs on the watchdog thread."""
        ticket = Ticket(self, time.monotonic() + self.timeout_s, on_expiry)
        with self._lock:
            self._running.add(ticket)
        return ticket

    def close(self) -> None:
        self._closed.set()

    def _remove(self, ticket: Ticket) -> bool:
        with self._lock:
            if ticket in self._running:
                self._running.remove(ticket)
                return True
            return False

    def _watch(self) -> None:
        while not self._closed.wait(self.tick_s):
            now = time.monotonic()
            with self._lock:
                expired = [ticket for ticket in self._running if ticket.deadline <= now]
                self._running.difference_update(expired)
            for ticket in expired:
                try:
                    ticket.on_expiry()
                except Exception:  # one client's broken connection must not stop the watchdog
                    log.exception("answering a request past its deadline failed")
