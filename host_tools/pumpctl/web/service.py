"""The pump behind the web programmer: one thread owns the serial link while `pumpctl web` runs and
publishes what it learns (status, log records, alarm events) to the pages' event streams.
docs/pumpctl.md (web/)."""

from __future__ import annotations

import collections
import json
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from .. import PumpctlError
from ..client import Client
from ..link import Link
from ..session import Session, read_logs

LISTEN_S = 0.05  # a link read slice between jobs: an alarm line waits at most this long
SAMPLES = 3600  # status samples kept for the live charts (an hour at one a second)


class PumpService:
    def __init__(self, port: str, keys_root: Any = None, poll_s: float = 1.0, timeout_s: float = 3.0,
                 link_factory: Callable[[str], Any] = Link):
        self.port = port
        self.keys_root = keys_root
        self.poll_s = poll_s
        self.timeout_s = timeout_s
        self._link_factory = link_factory
        self._jobs: queue.Queue = queue.Queue()
        self._subs: list[Callable[[dict], None]] = []
        self._subs_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.link: Any = None
        self.session: Session | None = None
        self.status: dict = {}
        self.therapy: dict = {}
        self.records: list[dict] = []
        self.log_problems: list[str] = []
        self.samples: collections.deque = collections.deque(maxlen=SAMPLES)
        self.error: str | None = None  # the last link problem, shown on the pages
        self.updated = 0.0

    # -- life -----------------------------------------------------------------------------------------
    def open(self) -> None:
        """Open the link (a busy port raises PumpctlError) and read status, therapy and the log."""
        self.link = self._link_factory(self.port)
        self.session = Session(Client(self.link, timeout_s=self.timeout_s), self.keys_root)
        self._refresh(log=True)

    def start(self) -> None:
        if self.link is None:
            self.open()
        self._thread = threading.Thread(target=self._run, name="pump-link", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self.link is not None:
            self.link.close()
            self.link = None

    # -- subscribers (server-sent event streams) -------------------------------------------------------
    def subscribe(self, fn: Callable[[dict], None]) -> Callable[[], None]:
        with self._subs_lock:
            self._subs.append(fn)

        def unsubscribe() -> None:
            with self._subs_lock:
                if fn in self._subs:
                    self._subs.remove(fn)

        return unsubscribe

    def publish(self, msg: dict) -> None:
        with self._subs_lock:
            subs = list(self._subs)
        for fn in subs:
            fn(msg)

    # -- jobs from the pages ---------------------------------------------------------------------------
    def submit(self, fn: Callable[[Session], Any]) -> Future:
        """Run fn(session) on the link thread; the Future has its result or its PumpctlError."""
        fut: Future = Future()
        self._jobs.put((fn, fut))
        return fut

    def call(self, fn: Callable[[Session], Any], timeout_s: float = 30.0) -> Any:
        return self.submit(fn).result(timeout=timeout_s)

    def change(self, op: str, args: dict | None = None, role: str | None = None) -> dict:
        """A signed change through the link thread, then fresh status, therapy and log."""

        def job(s: Session) -> dict:
            r = s.change(op, args, role)
            self._refresh(log=True)
            return r

        return self.call(job)

    # -- the link thread -------------------------------------------------------------------------------
    def _run(self) -> None:
        next_poll = time.monotonic() + self.poll_s
        while not self._stop.is_set():
            try:
                fn, fut = self._jobs.get_nowait()
            except queue.Empty:
                fn = None
            try:
                if fn is not None:
                    if fut.set_running_or_notify_cancel():
                        try:
                            fut.set_result(fn(self.session))
                        except Exception as e:  # the page shows it; the link thread goes on
                            fut.set_exception(e)
                    self._drain_events()
                    continue
                if time.monotonic() >= next_poll:
                    next_poll = time.monotonic() + self.poll_s
                    self._refresh(log=None)
                    continue
                self._listen(LISTEN_S)
            except PumpctlError as e:
                self._problem(str(e))
                time.sleep(min(self.poll_s, 1.0))

    def _listen(self, slice_s: float) -> None:
        line = self.link.readline(slice_s)
        if line is None:
            return
        t_host_ms = time.time() * 1000.0
        try:
            msg = json.loads(line)
        except ValueError:
            return
        if isinstance(msg, dict) and "event" in msg:
            self._event(msg, t_host_ms)

    def _drain_events(self) -> None:
        assert self.session is not None
        evs, self.session.client.events[:] = list(self.session.client.events), []
        for ev in evs:
            self._event(ev, time.time() * 1000.0)

    def _event(self, ev: dict, t_host_ms: float) -> None:
        self.publish({"type": "event", "event": ev, "t_host_ms": t_host_ms})
        if ev.get("event") in ("alarm", "boot", "internal"):
            self._refresh(log=True)  # the panels and the log follow at once, not at the next poll

    def _refresh(self, log: bool | None) -> None:
        """Status (and therapy, and new log records when log is True, or None and the log moved)."""
        assert self.session is not None
        st = self.session.read("status")
        if st.get("alarms"):  # who acknowledged what: the status reply names only the codes
            st["alarm_list"] = self.session.read("alarms").get("active", [])
        moved = st.get("log_seq", -1) != self.status.get("log_seq", -1)
        if st.get("therapy", {}) and (st.get("therapy") or {}).get("rx_id") != self.therapy.get("rx_id") \
                or not self.therapy:
            self.therapy = self.session.read("therapy")
        self.status = st
        self.error = None
        self.updated = time.time()
        from .views import board_time

        self.samples.append({"t": board_time(st, self.updated), "pressure_pa": st.get("pressure_pa"),
                             "delivered_nl": st.get("delivered_nl"), "reservoir_nl": st.get("reservoir_nl"),
                             "rate_nl_per_h": st.get("rate_nl_per_h")})
        new = []
        if log or (log is None and moved):
            new = self._read_log()
        self._drain_events()
        self.publish({"type": "status", "status": st, "new_records": new})

    def _read_log(self) -> list[dict]:
        assert self.session is not None
        since = self.records[-1]["seq"] if self.records else 0
        got = read_logs(self.session.client, since=since)
        self.records += got.records
        self.log_problems = (self.log_problems + got.problems)[-20:]
        return got.records

    def _problem(self, text: str) -> None:
        self.error = text
        self.publish({"type": "problem", "text": text})
