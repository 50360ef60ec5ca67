# Power-safe persistent state: a JSON document in two slots (generation + CRC32, temp file + rename),
# and the reserve mark that keeps delivered drug from being under-counted after a power cut: its file,
# where the next mark goes and when it moves, the tick's check. docs/persistence.md.
import binascii
import json
import os
import struct
import sys

from micropython import const

_MAGIC = const(b"ITPS")
_VERSION = const(1)
_HDR = const("<4sBIII")  # magic, version, generation, length, crc32
HDR_LEN = const(17)
_CRC_SPAN = const(13)  # header bytes the CRC covers (everything before the crc field)
MAX_DOC_BYTES = const(4096)  # bounds the RAM a load needs

SLOTS = ("state.0", "state.1")
TMP = "state.tmp"

CHECKPOINT_MS = const(600000)  # scheduled checkpoint while delivering: 10 min
RESERVE_MS = const(120000)  # basal reserve horizon: at most 2 min of basal booked at a reset
RESERVE_HEADROOM_MS = const(30000)  # move the mark when less than this is left (every ~90 s)
# How far past the state's own mark a damaged mark file could have reached: marks move only between
# state saves (at most CHECKPOINT_MS apart while delivering), each RESERVE_MS ahead.
RESERVE_BOUND_MS = const(720000)  # CHECKPOINT_MS + RESERVE_MS

MARK = "mark"
MARK_TMP = "mark.tmp"
MARK_MAGIC = b"ITPM"
_MARK_FMT = "<4sIII"  # magic, generation, delivered_nl, reserved_nl; then crc32 of these 16 bytes
MARK_LEN = const(20)


def _join(d, name):
    return d + "/" + name if d else name


def _exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


def write_json(path, obj):
    """obj as JSON in path, atomically: a temp file, closed (littlefs commits on close), renamed over.
    Raises OSError with the old file intact."""
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f)
    os.rename(tmp, path)


def encode(state, generation):
    """Slot file bytes for state (a JSON-able dict) as generation."""
    body = json.dumps(state).encode()
    if len(body) > MAX_DOC_BYTES:
        raise ValueError("state document is %d bytes, over the %d-byte limit" % (len(body), MAX_DOC_BYTES))
    hdr = bytearray(struct.pack(_HDR, _MAGIC, _VERSION, generation, len(body), 0))
    crc = binascii.crc32(body, binascii.crc32(hdr[:_CRC_SPAN])) & 0xFFFFFFFF
    struct.pack_into("<I", hdr, _CRC_SPAN, crc)
    return bytes(hdr) + body


def _header(hdr, size):
    """(generation, crc) from a slot's first HDR_LEN bytes and its total size; ValueError says what is
    wrong."""
    if len(hdr) < HDR_LEN:
        raise ValueError("truncated header (%d bytes)" % len(hdr))
    magic, ver, gen, n, crc = struct.unpack_from(_HDR, hdr, 0)
    if magic != _MAGIC:
        raise ValueError("bad magic")
    if ver != _VERSION:
        raise ValueError("unknown version %d" % ver)
    if n > MAX_DOC_BYTES:
        raise ValueError("length %d over the limit" % n)
    if size != HDR_LEN + n:
        raise ValueError("length %d but %d bytes of body" % (n, size - HDR_LEN))
    return gen, crc


def _parse(state):
    if not isinstance(state, dict):
        raise ValueError("document is not an object")
    return state


def decode(raw):
    """(state, generation) from slot bytes; ValueError saying what is wrong (Store reads a file the
    same way, without holding its bytes)."""
    gen, crc = _header(raw, len(raw))
    mv = memoryview(raw)
    if binascii.crc32(mv[HDR_LEN:], binascii.crc32(mv[:_CRC_SPAN])) & 0xFFFFFFFF != crc:
        raise ValueError("CRC mismatch")
    try:
        state = json.loads(bytes(mv[HDR_LEN:]))
    except ValueError:
        raise ValueError("CRC good but JSON unreadable")
    return _parse(state), gen


class Store:
    """Two-slot generational store in dir_path (created if missing)."""

    def __init__(self, dir_path):
        self.dir = dir_path
        if dir_path and not _exists(dir_path):
            os.mkdir(dir_path)
        self.generation = 0  # newest generation on flash (valid); 0: none yet
        self._slot = -1  # slot index holding it
        self._buf = bytearray(64)  # _crc()'s read buffer (save and load), made once
        self._mbuf = bytearray(MARK_LEN)
        self._mark_ok = False  # the mark file exists whole: rewritten in place
        self.mark = None  # (delivered_nl, reserved_nl) saved against the loaded generation
        self.mark_bad = False  # a mark was found damaged or ahead of the state: not trusted

    def load(self):
        """(state or None, generation, problems). problems: strings for the caller to log."""
        problems = []
        tmp = _join(self.dir, TMP)
        if _exists(tmp):
            # A save was cut before its rename: its target slot was never touched.
            problems.append("%s: interrupted save discarded" % TMP)
            try:
                os.remove(tmp)
            except OSError as e:
                problems.append("%s: cannot remove (%s)" % (TMP, e))
        best = None
        best_gen = -1
        best_slot = -1
        for i in range(len(SLOTS)):
            path = _join(self.dir, SLOTS[i])
            if not _exists(path):
                continue
            try:
                state, gen = self._read(path)
            except (OSError, ValueError) as e:
                problems.append("%s: corrupt, skipped (%s)" % (SLOTS[i], e))
                continue
            if gen > best_gen:
                best, best_gen, best_slot = state, gen, i
        if best is None:
            best_gen, best_slot = 0, -1
        self.generation, self._slot = best_gen, best_slot
        self._load_mark(best_gen, problems)
        return best, best_gen, problems

    def _load_mark(self, gen, problems):
        self.mark = None
        self.mark_bad = False
        self._mark_ok = False  # (a mark.tmp left by a cut is rewritten whole by the next first write)
        try:
            with open(_join(self.dir, MARK), "rb") as f:
                raw = f.read(MARK_LEN + 1)
        except OSError:
            return  # none yet
        if len(raw) != MARK_LEN or raw[:4] != MARK_MAGIC or \
                binascii.crc32(raw[:16]) & 0xFFFFFFFF != struct.unpack_from("<I", raw, 16)[0]:
            problems.append("%s: corrupt, bounded (%d bytes)" % (MARK, len(raw)))
            self.mark_bad = True
            return
        _, mgen, d, r = struct.unpack_from(_MARK_FMT, raw, 0)
        if mgen == gen:
            self.mark = (d, r)
        elif mgen > gen:  # the state it extends was lost: its numbers may be another refill's
            problems.append("%s: generation %d ahead of the state's %d, bounded" % (MARK, mgen, gen))
            self.mark_bad = True

    def save_mark(self, delivered_nl, reserved_nl):
        """Persist the reserve mark against the newest generation. 20 bytes rewritten in place: one
        littlefs metadata commit, atomic (old or new mark after a cut); the first write of a boot
        goes through mark.tmp + rename, since creating a file commits it empty. Raises OSError."""
        buf = self._mbuf
        struct.pack_into(_MARK_FMT, buf, 0, MARK_MAGIC, self.generation, delivered_nl, reserved_nl)
        struct.pack_into("<I", buf, 16, binascii.crc32(memoryview(buf)[:16]) & 0xFFFFFFFF)
        if self._mark_ok:
            with open(_join(self.dir, MARK), "r+b") as f:
                f.write(buf)
            return
        tmp = _join(self.dir, MARK_TMP)
        with open(tmp, "wb") as f:
            f.write(buf)
        os.rename(tmp, _join(self.dir, MARK))
        self._mark_ok = True

    def _read(self, path):
        """(state, generation) of a slot file, checked as decode() checks the bytes, without holding
        them: the CRC is read through the 64-byte buffer (_crc), then the JSON parsed from the file (a heap
        just after boot, fragmented by the imports, may lack a document-sized block: "load failed:
        MemoryError" after a watchdog reset, and no therapy resumed)."""
        size = os.stat(path)[6]
        with open(path, "rb") as f:
            hdr = f.read(HDR_LEN)
            gen, crc = _header(hdr, size)
            if self._crc(f, hdr) != crc:
                raise ValueError("CRC mismatch")
            f.seek(HDR_LEN)
            try:
                state = json.load(f)
            except ValueError:
                raise ValueError("CRC good but JSON unreadable")
        return _parse(state), gen

    def save(self, state):
        """Write state as the next generation; returns it. Raises OSError/ValueError, state unchanged
        (the temporary file is removed; load() would discard it anyway)."""
        gen = self.generation + 1
        slot = 1 if self._slot == 0 else 0  # never overwrite the newest valid copy
        tmp = _join(self.dir, TMP)
        try:
            with open(tmp, "w+b") as f:
                self._write(f, state, gen)
        except Exception:
            try:
                os.remove(tmp)
            except OSError:
                pass
            raise
        os.rename(tmp, _join(self.dir, SLOTS[slot]))
        self.generation, self._slot = gen, slot
        return gen

    def _write(self, f, state, gen):
        """Header placeholder, the JSON streamed, then the real header with the CRC of what the file
        holds (_crc): the same bytes as encode(state, gen)."""
        hdr = bytearray(HDR_LEN)
        f.write(hdr)
        if sys.implementation.name == "micropython":
            json.dump(state, f)  # piece by piece into the file
        else:
            f.write(json.dumps(state).encode())  # CPython's json.dump writes str: not to a binary file
        n = f.tell() - HDR_LEN
        if n > MAX_DOC_BYTES:
            raise ValueError("state document is %d bytes, over the %d-byte limit" % (n, MAX_DOC_BYTES))
        struct.pack_into(_HDR, hdr, 0, _MAGIC, _VERSION, gen, n, 0)
        struct.pack_into("<I", hdr, _CRC_SPAN, self._crc(f, hdr))
        f.seek(0)
        f.write(hdr)

    def _crc(self, f, hdr):
        """The slot's CRC32: hdr's covered bytes, then the file's body read through the 64-byte buffer."""
        c = binascii.crc32(memoryview(hdr)[:_CRC_SPAN])
        buf = self._buf
        mv = memoryview(buf)
        f.seek(HDR_LEN)
        while True:
            k = f.readinto(buf)
            if not k:
                break
            c = binascii.crc32(mv[:k], c)
        return c & 0xFFFFFFFF


# -- reserve rule -------------------------------------------------------------------------------
def reserve_mark(delivered_nl, rate_nl_per_h, horizon_ms=RESERVE_MS, extra_nl=0):
    """High-water mark to persist before delivering the next horizon_ms of basal (+ a bolus)."""
    # rate * seconds stays below 2**30 up to 1.49 mL/h over 20 min (integers, rounded up)
    return delivered_nl + (rate_nl_per_h * (horizon_ms // 1000) + 3599) // 3600 + extra_nl


def estimate_nl(p):
    """Delivered since refill by pump p if every step asked so far is given (rounded up): the tick moves
    the motor only while this stays within the persisted mark (p.reserved_nl)."""
    d = p.dosing
    return p.delivered_nl + d.delivered_nl + (d.in_flight * d.max_step_pl + 999) // 1000 + 1


def mark_ahead(p, from_nl, horizon_ms):
    """The mark covering horizon_ms of pump p's highest basal (bridge included) beyond from_nl, and the
    running bolus and the steps in flight; the mark persisted (mark file or checkpoint) is RESERVE_MS
    ahead of p.delivered_nl. A periodic bolus is not booked ahead: when it starts, the tick waits
    (reserve_waits) until housekeeping, run at once on need_mark, has moved the mark over it."""
    extra = (p.dosing.in_flight * p.dosing.max_step_pl + 999) // 1000 + 1
    th = p.therapy
    if th is None:
        return reserve_mark(from_nl, 0, horizon_ms, extra)
    extra += th.bolus_left_nl
    return reserve_mark(from_nl, th.peak_basal_nl_per_h(), horizon_ms, extra)


def mark_low(p):
    """True when pump p's mark is close: less than RESERVE_HEADROOM_MS of basal plus the extras left."""
    return p.therapy is not None and mark_ahead(p, estimate_nl(p), RESERVE_HEADROOM_MS) > p.reserved_nl


def may_deliver(delivered_nl, chunk_nl, reserved_nl):
    """True when delivering chunk_nl stays within the persisted mark."""
    return delivered_nl + chunk_nl <= reserved_nl


def recovered_delivered_nl(state, mark=None):
    """Delivered volume to resume with after a reset: the persisted mark (the state's, or the mark
    file's (delivered_nl, reserved_nl) saved against the same generation), never less."""
    d = state.get("delivered_nl", 0)
    r = state.get("reserved_nl", 0)
    if r > d:
        d = r
    if mark is not None:
        for v in mark:
            if v > d:
                d = v
    return d


class CheckpointPolicy:
    """When to save: at once after a change, else every interval_ms while there is progress."""

    def __init__(self, clock, interval_ms=CHECKPOINT_MS):
        self._clock = clock
        self.interval_ms = interval_ms
        self._last = clock.ticks_ms()
        self._urgent = False
        self._dirty = False

    def changed(self):
        """Therapy, refill, bolus start, alarm ack, auth counter, calibration: save now."""
        self._urgent = True

    def progress(self):
        """Delivery moved on (delivered_nl changed): save at the next scheduled point."""
        self._dirty = True

    def due(self):
        if self._urgent:
            return True
        now = self._clock.ticks_ms()
        if self._clock.ticks_diff(now, self._last) < self.interval_ms:
            return False
        if self._dirty:
            return True
        self._last = now  # nothing to save: restart the window (keeps ticks_diff far from a wrap)
        return False

    def saved(self):
        self._last = self._clock.ticks_ms()
        self._urgent = False
        self._dirty = False


def saves_per_day(interval_ms=CHECKPOINT_MS, changes_per_day=0):
    """Saves a day when delivering all day: scheduled ones plus one per change."""
    return 86400000 // interval_ms + changes_per_day
