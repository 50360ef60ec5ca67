# The link: bytes from the board's serial framed into requests, dispatched (protocol.py) and answered;
# the REPL lock: while a therapy is programmed and not suspended, Ctrl-C/Ctrl-A on the link are data
# (leaving for the REPL would silence the alarms and stop the pump unseen), and the link says why, once
# a second. Suspend and the service op open it. The board's set_repl_lock: boards/README.md.
from micropython import const

from itpump import protocol

_NOTICE_MS = const(1000)  # a held Ctrl-C is explained at most this often
_LOCKED_LINE = const(b'{"event": "repl_locked", "message": "itpump: therapy is running, the REPL is locked '
                     b'(Ctrl-C/Ctrl-A ignored): pumpctl service (service key) suspends it and opens the REPL"}\r\n')


class Link:
    """The board's link to the ops (ops.Table, set by the app once built: its service op syncs the lock
    through this link) under auth, and the REPL lock over the pump's therapy."""

    def __init__(self, board, pump, auth):
        self.board = board
        self.pump = pump
        self.auth = auth
        self.ops = None
        self.reader = protocol.LineReader()
        self._set_lock = getattr(board, "set_repl_lock", None)
        self.locked = False  # the REPL is locked
        self._told = None  # tick the lock was last explained

    def take(self, c, now):
        """One received byte (link traffic, not the steady tick); returns 1 when it ended a request."""
        clock = self.board.clock
        serial = self.board.serial
        rd = self.reader
        rd.arrived(clock, now)  # a partial line left by a killed tool is dropped
        # Ctrl-C/Ctrl-A while therapy runs: say (once a second) why the REPL does not come
        if (c == 3 or c == 1) and self.locked and (
                self._told is None or not 0 <= clock.ticks_diff(now, self._told) < _NOTICE_MS):
            self._told = now
            serial.write(_LOCKED_LINE)
        st = rd.feed(c)
        if st == protocol.FEED_LINE:
            line = rd.take()
            if line.strip():  # blank lines (a terminal's Enter) are not requests
                # a read's reply goes piecewise to the raw link, if the board has one
                r = protocol.dispatch(line, self.ops, self.auth, getattr(serial, "stream", None))
                if r is not None:
                    serial.write(r)
                self.sync_lock()  # a program locks at once, not at the next tick
                return 1
        elif st == protocol.FEED_OVERFLOW:
            serial.write(protocol.error_line(
                None, protocol.E_FRAME, "line longer than %d bytes discarded" % protocol.MAX_LINE))
        return 0

    def sync_lock(self):
        """Lock the REPL whenever a therapy is programmed and not suspended, halted by an alarm or not.
        Called after every request and every tick (a restore, an alarm halt or a suspend change it)."""
        th = self.pump.therapy
        want = th is not None and not th.suspended
        if want != self.locked and self._set_lock is not None:
            self._set_lock(want)
            self.locked = want
