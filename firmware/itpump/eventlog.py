# Append-only event log: framed records (magic, length, CRC32) in segment files, rotated at a size
# budget. The host imports this module to decode (pumpctl.logs): the format lives here only.
# Record layout, resync after a torn write, segments and wall time: docs/persistence.md.
import binascii
import os
import struct

from micropython import const

MAGIC = const(0xA5)
_HDR = const("<BBBIII")  # magic, n, code, seq, ticks_ms, wall_s
HDR_LEN = const(15)
CRC_LEN = const(4)
MAX_DATA = const(32)
_MAX_REC = const(51)  # HDR_LEN + MAX_DATA + CRC_LEN
WALL_EPOCH_UNIX = 1577836800  # 2020-01-01T00:00:00Z in Unix seconds

SEG_BYTES = const(16384)  # segment size budget
MAX_SEGS = const(24)  # 384 KiB of the Pico's 1408 KiB filesystem: over 10,000 records, about a year
_PREFIX = const("ev")
_SUFFIX = const(".log")

# -- code table: code -> (name, struct format of data, field names) ------------------------------
BOOT = const(1)
THERAPY = const(2)
BOLUS_GIVEN = const(3)
BOLUS_REFUSED = const(4)
BOLUS_ABANDONED = const(5)
REFILL = const(6)
ALARM_RAISED = const(7)
ALARM_ACKED = const(8)
ALARM_CLEARED = const(9)
CALIBRATION = const(10)
AUTH_FAILURE = const(11)
TIME_SET = const(12)
FW_FLASHED = const(13)
LOG_DROPPED = const(14)
LOG_DAMAGED = const(15)
STORE_PROBLEM = const(16)
DELIVERY = const(17)
CHANGE_REFUSED = const(18)
SAFETY = const(19)
RESERVE_BOOKED = const(20)

CODES = {
    BOOT: ("boot", "<BI", ("reset_cause", "boot_count")),
    THERAPY: ("therapy_change", "<II", ("rate_nl_per_h", "rx_id")),
    BOLUS_GIVEN: ("bolus_given", "<I", ("volume_nl",)),
    BOLUS_REFUSED: ("bolus_refused", "<IB", ("volume_nl", "reason")),
    BOLUS_ABANDONED: ("bolus_abandoned", "<I", ("volume_nl",)),  # not resumed after a reset
    REFILL: ("refill", "<II", ("volume_nl", "expected_nl")),
    ALARM_RAISED: ("alarm_raised", "<B", ("alarm",)),
    ALARM_ACKED: ("alarm_acked", "<B", ("alarm",)),
    ALARM_CLEARED: ("alarm_cleared", "<B", ("alarm",)),
    CALIBRATION: ("calibration", "<Ii", ("pl_per_step", "pressure_offset_pa")),
    AUTH_FAILURE: ("auth_failure", "<BB", ("role", "reason")),
    TIME_SET: ("time_set", "<I", ("previous_wall_s",)),
    FW_FLASHED: ("fw_flashed", "<I", ("version",)),  # version as 0xMMmmpp
    LOG_DROPPED: ("log_dropped", "<II", ("first_seq", "last_seq")),
    LOG_DAMAGED: ("log_damaged", "<II", ("segment", "bytes_skipped")),
    STORE_PROBLEM: ("store_problem", "<IB", ("generation", "slot")),
    DELIVERY: ("delivery", "<II", ("delivered_nl", "rate_nl_per_h")),  # with each hourly checkpoint
    CHANGE_REFUSED: ("change_refused", "s", ("text",)),  # "op:CODE", ASCII
    SAFETY: ("safety", "<BiI", ("kind", "pressure_pa", "volume_nl")),  # kind: SAFETY_KINDS
    # at boot: volume taken as delivered by the reserve rule without confirmed pulses; total: all boots
    RESERVE_BOOKED: ("reserve_booked", "<II", ("volume_nl", "total_nl")),
}
# Value tables for the small-int fields above (index = value)
# CRASH: the interpreter died (the virtual board's bridge restarts it); UNKNOWN: any cause not named here
RESET_CAUSES = ("PWRON", "WDT", "SOFT", "HARD", "CRASH", "UNKNOWN")
REFUSE_REASONS = ("limit_1h", "limit_24h", "lockout", "alarm", "reservoir", "busy", "auth", "rate")
AUTH_REASONS = ("bad_mac", "replay", "role", "locked_out", "duplicate")
ROLES = ("patient", "clinician", "service")
SAFETY_KINDS = ("occlusion", "leak", "stall", "sensor", "cleared", "battery_eos", "boot_loop", "service",
                "resume", "late_task", "occlusion_reset")
# STORE_PROBLEM "slot": the state slot (0, 1) that failed, or what else could not be read or written
STORE_GUARD = const(252)  # the dose guard's windows in the state: taken as full
STORE_KEYS = const(253)  # the device keys file
STORE_AUTH = const(254)  # the link's anti-replay state
STORE_STATE = const(255)  # the state as a whole: load, apply or save

# scan item kinds
REC = const(0)  # a valid record
BAD = const(1)  # bytes skipped in the middle (corrupt); resynced at the next valid record
TAIL = const(2)  # bytes at the end that are no record (torn last write)

_OK = const(0)
_SHORT = const(1)
_WRONG = const(2)


def reset_cause_index(cause):
    """The BOOT record's reset_cause value for a board's cause string (UNKNOWN when not named)."""
    return RESET_CAUSES.index(cause) if cause in RESET_CAUSES else len(RESET_CAUSES) - 1


def encode_into(buf, off, seq, ticks_ms, wall_s, code, data):
    """Frame one record into buf at off (no allocation beyond the CRC int). Returns its length."""
    n = len(data)
    if n > MAX_DATA:
        raise ValueError("event data is %d bytes, max %d" % (n, MAX_DATA))
    struct.pack_into(_HDR, buf, off, MAGIC, n, code, seq, ticks_ms, wall_s)
    end = off + HDR_LEN
    buf[end:end + n] = data
    end += n
    mv = memoryview(buf)
    struct.pack_into("<I", buf, end, binascii.crc32(mv[off:end]) & 0xFFFFFFFF)
    return end + CRC_LEN - off


def encode(seq, ticks_ms, wall_s, code, data=b""):
    buf = bytearray(HDR_LEN + len(data) + CRC_LEN)
    encode_into(buf, 0, seq, ticks_ms, wall_s, code, data)
    return bytes(buf)


def pack_data(code, vals):
    """Data bytes for code from its field values (per CODES)."""
    spec = CODES.get(code)
    if spec is None:
        raise ValueError("unknown event code %d" % code)
    if len(vals) != len(spec[2]):
        raise ValueError("%s takes %d values (%s), got %d" % (spec[0], len(spec[2]), ",".join(spec[2]), len(vals)))
    if spec[1] == "s":  # text
        b = vals[0].encode() if isinstance(vals[0], str) else bytes(vals[0])
        return b[:MAX_DATA]
    return struct.pack(spec[1], *vals)


def fields(code, data):
    """Decoded data: dict of field -> value, or {"data": hex} when unknown or of the wrong size."""
    spec = CODES.get(code)
    if spec is not None and spec[1] == "s":
        try:
            return {spec[2][0]: str(data, "utf-8")}
        except UnicodeError:
            return {"data": binascii.hexlify(data).decode()}
    if spec is not None and len(data) == struct.calcsize(spec[1]):
        vals = struct.unpack(spec[1], data)
        return dict(zip(spec[2], vals))
    return {"data": binascii.hexlify(data).decode()}


def code_name(code):
    spec = CODES.get(code)
    return spec[0] if spec else "code_%d" % code


def unpack(buf, off):
    """(seq, ticks_ms, wall_s, code, data) of a checked record at off."""
    _, n, code, seq, ticks, wall = struct.unpack_from(_HDR, buf, off)
    return seq, ticks, wall, code, bytes(buf[off + HDR_LEN:off + HDR_LEN + n])


def scan_chunks(readinto, bufsize=512):
    """Walk records from a byte source. readinto(memoryview) -> bytes read (0 at the end).

    Yields (REC, offset, record), (BAD, offset, nbytes) or (TAIL, offset, nbytes). Memory is one
    bufsize buffer whatever the source's size. A corrupt run is reported once, then the walk
    continues at the next valid record."""
    buf = bytearray(bufsize)
    mv = memoryview(buf)
    start = end = 0
    base = 0  # source offset of buf[0]
    eof = False
    bad_at = -1  # source offset where the current corrupt run began
    while True:
        if end - start < _MAX_REC and not eof:
            if start:
                buf[0:end - start] = mv[start:end]
                base += start
                end -= start
                start = 0
            n = readinto(mv[end:])
            if n:
                end += n
            else:
                eof = True
            continue
        if start >= end:
            if bad_at >= 0:
                yield TAIL, bad_at, base + end - bad_at
            return
        # the frame at buf[start:end]: _OK (n its length), _SHORT if it runs past end, or _WRONG
        st, n = _SHORT, 0
        if end - start >= 2:
            st = _WRONG
            n = buf[start + 1]
            if buf[start] == MAGIC and n <= MAX_DATA:
                n += HDR_LEN + CRC_LEN
                crc_at = start + n - CRC_LEN
                if end - start < n:
                    st = _SHORT
                elif binascii.crc32(mv[start:crc_at]) & 0xFFFFFFFF == struct.unpack_from("<I", buf, crc_at)[0]:
                    st = _OK
        if st == _OK:
            if bad_at >= 0:
                yield BAD, bad_at, base + start - bad_at
                bad_at = -1
            yield REC, base + start, unpack(buf, start)
            start += n
        elif st == _SHORT and eof:
            if bad_at < 0:
                bad_at = base + start
            yield TAIL, bad_at, base + end - bad_at
            return
        else:
            if bad_at < 0:
                bad_at = base + start
            start += 1


def scan_bytes(data):
    """scan_chunks over an in-memory bytes object (host side, tests)."""
    pos = [0]

    def readinto(mv):
        n = min(len(mv), len(data) - pos[0])
        mv[:n] = data[pos[0]:pos[0] + n]
        pos[0] += n
        return n

    return scan_chunks(readinto)


def describe(kind, off, n, nrec, last_seq, where=""):
    """One-line problem text for a BAD/TAIL scan item: names the record number and byte offset."""
    what = "corrupt data" if kind == BAD else "torn/garbage tail"
    return "%srecord #%d (after seq %d) at byte %d: %s, %d bytes skipped" % (
        where, nrec + 1, last_seq, off, what, n)


def seg_name(first_seq):
    return "%s%08x%s" % (_PREFIX, first_seq, _SUFFIX)


class WallClock:
    """Wall seconds since WALL_EPOCH_UNIX once set, from accumulated tick deltas (survives the
    tick wrap as long as now_s() runs at least every few days: the log calls it on each append)."""

    def __init__(self, clock):
        self._clock = clock
        self._last = clock.ticks_ms()
        self._s = 0
        self._ms = 0

    def set(self, wall_s):
        """Set the time; returns the previous value (0 if unset) for the TIME_SET record."""
        prev = self.now_s()
        self._s = wall_s
        self._ms = 0
        return prev

    def now_s(self):
        now = self._clock.ticks_ms()
        ms = self._ms + self._clock.ticks_diff(now, self._last)
        self._last = now
        if ms >= 1000:
            if self._s:
                self._s += ms // 1000
            ms %= 1000
        self._ms = ms
        return self._s


class EventLog:
    """The log in dir_path. Opening it scans the newest segment to continue the sequence.

    problems: strings found while opening (torn tail, unreadable segment), also logged as LOG_DAMAGED."""

    def __init__(self, dir_path, clock, wall=None, seg_bytes=SEG_BYTES, max_segs=MAX_SEGS):
        if seg_bytes < 2 * _MAX_REC or max_segs < 2:
            raise ValueError("segment budget too small")
        self.dir = dir_path
        self.clock = clock
        self.wall = wall  # object with now_s(), or None: wall_s is 0
        self.seg_bytes = seg_bytes
        self.max_segs = max_segs
        self.problems = []  # type: list
        self.dropping_upto = 0  # last seq of the segment being/been dropped (power-cut tests read it)
        self._buf = bytearray(_MAX_REC)
        self._mv = memoryview(self._buf)
        try:
            os.stat(dir_path)
        except OSError:
            os.mkdir(dir_path)
        segs = []  # the first seq of each segment, from its name (seg_name)
        for name in os.listdir(dir_path):
            if name.startswith(_PREFIX) and name.endswith(_SUFFIX) and len(name) == 14:
                try:
                    first = int(name[2:10], 16)
                except ValueError:
                    continue
                if first >= 0:
                    segs.append(first)
        segs.sort()
        self._segs = segs
        self.seq = 0
        self._size = 0
        damaged = None
        if self._segs:
            first = self._segs[-1]
            nrec, last, size, bad = self._scan_seg(first, self.problems)
            self.seq = last if nrec else first - 1
            self._size = size
            if bad:
                damaged = (first, bad)
                if not nrec:  # nothing valid in it: its name is the next seq's, make room
                    os.remove(self._path(first))
                    self._segs.pop()
        if self.seq < 0:
            self.seq = 0
        if damaged or not self._segs:
            self._open_new()
        if damaged:
            self.append(LOG_DAMAGED, damaged[0], damaged[1])

    def _path(self, first):
        return self.dir + "/" + seg_name(first)

    def _scan_seg(self, first, problems, since=-1, out=None, limit=0):
        """Walk one segment: (valid records, last seq, file size, bytes skipped). Records with
        seq > since go to out (up to limit); problems get a line per corrupt run or tail."""
        nrec = 0
        last = 0
        bad = 0
        size = 0
        where = seg_name(first) + " "
        try:
            f = open(self._path(first), "rb")
        except OSError as e:
            problems.append("%scannot open (%s)" % (where, e))
            return 0, 0, 0, 0
        try:
            for kind, off, item in scan_chunks(f.readinto):
                if kind == REC:
                    nrec += 1
                    last = item[0]
                    size = off + HDR_LEN + len(item[4]) + CRC_LEN
                    if out is not None and item[0] > since:
                        out.append(item)
                        if len(out) >= limit:
                            break
                else:
                    problems.append(describe(kind, off, item, nrec, last, where))
                    bad += item
                    size = off + item
        finally:
            f.close()
        return nrec, last, size, bad

    def _open_new(self):
        dropped = None
        while len(self._segs) >= self.max_segs:
            old = self._segs[0]
            last = self._segs[1] - 1 if len(self._segs) > 1 else self.seq
            self.dropping_upto = last
            os.remove(self._path(old))
            self._segs.pop(0)
            dropped = (old, last) if dropped is None else (dropped[0], last)
        first = self.seq + 1
        open(self._path(first), "wb").close()
        self._segs.append(first)
        self._size = 0
        if dropped:
            self.append(LOG_DROPPED, dropped[0], dropped[1])

    def append(self, code, *vals):
        """Log an event with its CODES fields; returns its seq."""
        return self.append_raw(code, pack_data(code, vals))

    def append_raw(self, code, data=b""):
        """Log an event with raw data bytes (<= MAX_DATA); returns its seq. Durable on return."""
        n = HDR_LEN + len(data) + CRC_LEN
        if len(data) > MAX_DATA:
            raise ValueError("event data is %d bytes, max %d" % (len(data), MAX_DATA))
        if self._size + n > self.seg_bytes:
            self._open_new()
        seq = self.seq + 1
        wall = self.wall.now_s() if self.wall is not None else 0
        encode_into(self._buf, 0, seq, self.clock.ticks_ms(), wall, code, data)
        # Opened per record, not kept open: an open littlefs file holds ~1.1 KB of heap (its cache),
        # and records are rare. close() commits: a cut after it keeps the record.
        with open(self._path(self._segs[-1]), "ab") as f:
            f.write(self._mv[:n])
        self.seq = seq
        self._size += n
        return seq

    def first_seq(self):
        """Oldest seq still held (approximately: a damaged first record may be missing)."""
        return self._segs[0] if self._segs else self.seq + 1

    def read(self, since_seq, max_records):
        """(records with seq > since_seq, oldest first, at most max_records; problems).

        A record is (seq, ticks_ms, wall_s, code, data). Page with since_seq = last seq received."""
        out = []  # type: list
        problems = []  # type: list
        if max_records <= 0:
            return out, problems
        segs = self._segs
        i = 0
        while i + 1 < len(segs) and segs[i + 1] <= since_seq + 1:
            i += 1
        while i < len(segs) and len(out) < max_records:
            self._scan_seg(segs[i], problems, since_seq, out, max_records)
            i += 1
        return out, problems

    def close(self):
        """Nothing stays open between records (kept for the callers that close a log)."""
