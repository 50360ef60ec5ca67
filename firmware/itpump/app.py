# Composition root: wires the parts from the board object and runs the control loop.
# Imports nothing from machine: every device comes from the board.
import gc
import sys

from itpump import VERSION, protocol

try:
    from micropython import const
except ImportError:  # CPython unit tests
    def const(x):
        return x

TICK_MS = const(100)  # control tick period
WDT_TIMEOUT_MS = const(4000)  # well inside rp2's 8388 ms maximum; >> one tick plus a GC pause
E_SIM_ONLY = "SIM_ONLY"
SIM_OPS = ("sim.clock", "sim.advance", "sim.hang", "sim.reset", "sim.fault")


class Uptime:
    """Uptime from accumulated tick deltas: survives the 2**30 tick wrap, stays in small ints."""

    def __init__(self, clock):
        self._clock = clock
        self._last = clock.ticks_ms()
        self.s = 0
        self._ms = 0

    def update(self):
        now = self._clock.ticks_ms()
        ms = self._ms + self._clock.ticks_diff(now, self._last)
        self._last = now
        if ms >= 1000:
            self.s += ms // 1000
            ms %= 1000
        self._ms = ms

    def ms(self):
        return self.s * 1000 + self._ms


class App:
    def __init__(self, board):
        self.board = board
        self.clock = board.clock
        self.serial = board.serial
        self.reader = protocol.LineReader()
        self.uptime = Uptime(board.clock)
        self.ticks = 0
        self.ops = {
            "ping": self.op_ping,
            "status": self.op_status,
        }
        sim_ops = getattr(board, "sim_ops", None)
        if sim_ops is not None:
            for name, fn in sim_ops().items():
                self.ops[name] = _board_op(fn)
        else:  # a real board refuses fault injection by name, not as an unknown op
            for name in SIM_OPS:
                self.ops[name] = _sim_only(name, board.name)
        self.wdt = getattr(board, "wdt", None)

    # -- link ---------------------------------------------------------------
    def send(self, line):
        self.serial.write(line)

    def poll_link(self):
        """Handle every complete request waiting on the serial link."""
        while True:
            c = self.serial.readchar()
            if c < 0:
                return
            st = self.reader.feed(c)
            if st == protocol.FEED_LINE:
                line = self.reader.take()
                if line.strip():  # blank lines (a terminal's Enter) are not requests
                    self.send(protocol.dispatch(line, self.ops))
            elif st == protocol.FEED_OVERFLOW:
                self.send(protocol.error_line(
                    None, protocol.E_FRAME, "line longer than %d bytes discarded" % protocol.MAX_LINE))

    # -- ops ----------------------------------------------------------------
    def op_ping(self, args):
        protocol.check_args(args, {})
        return {"pong": True}

    def op_status(self, args):
        protocol.check_args(args, {})
        self.uptime.update()
        gc.collect()
        return {
            "fw": VERSION,
            "board": self.board.name,
            "uptime_ms": self.uptime.ms(),
            "reset_cause": self.board.reset_cause(),
            "mem_free": gc.mem_free(),
            "mem_alloc": gc.mem_alloc(),
            "ticks": self.ticks,
            "platform": sys.platform,
        }

    # -- loop ---------------------------------------------------------------
    def tick(self):
        self.uptime.update()
        self.ticks += 1
        if self.wdt is not None:
            self.wdt.feed()  # the loop is alive (per-task check-ins: supervisor, next issue)

    def boot(self):
        self.send(protocol.event_line("boot", {
            "fw": VERSION, "board": self.board.name, "reset_cause": self.board.reset_cause()}))

    def step(self, next_tick):
        """One pass of the loop: link, then the control tick when due. Returns the next due tick."""
        self.poll_link()
        clock = self.clock
        now = clock.ticks_ms()
        wait_ms = clock.ticks_diff(next_tick, now)
        if wait_ms > 0:
            self.serial.wait(wait_ms)
            return next_tick
        self.tick()
        next_tick = clock.ticks_add(next_tick, TICK_MS)
        if clock.ticks_diff(next_tick, now) <= 0:  # fell behind (slow host, fast clock): no burst
            next_tick = clock.ticks_add(now, TICK_MS)
        return next_tick

    def run(self):
        if self.wdt is not None:
            self.wdt.start(WDT_TIMEOUT_MS)
        self.boot()
        next_tick = self.clock.ticks_add(self.clock.ticks_ms(), TICK_MS)
        while True:
            next_tick = self.step(next_tick)


def _board_op(fn):
    """A board's op (args -> result) with ValueError reported as bad arguments."""
    def handler(args):
        try:
            return fn(args)
        except ValueError as e:
            raise protocol.ProtocolError(protocol.E_ARGS, str(e))
    return handler


def _sim_only(name, board_name):
    def handler(args):
        raise protocol.ProtocolError(E_SIM_ONLY, "'%s' exists only on the virtual board, not on %s" % (
            name, board_name))
    return handler


def main(board):
    app = App(board)
    try:
        app.run()
    except KeyboardInterrupt:
        # Ctrl-C from the host (mpremote) while the REPL is not locked: leave for the REPL. The
        # watchdog would otherwise reset the board in the middle of the host's session.
        disable = getattr(app.wdt, "disable", None)
        if disable is not None:
            disable()
        print("itpump: stopped by Ctrl-C, REPL open")
