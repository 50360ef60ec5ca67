# What the pump records and announces: event-log records (a failing log never stops the pump: failures
# are counted for status), alarm transitions as records and link events, auth refusals as records.
from itpump import alarms, auth, eventlog, protocol

# protocol error code of an auth refusal -> AUTH_FAILURE "reason" (eventlog.CODES)
_AUTH_REASON = {protocol.E_AUTH_MAC: 0, protocol.E_AUTH_REPLAY: 1, protocol.E_AUTH_FORBIDDEN: 2,
                protocol.E_AUTH_ROLE: 2, protocol.E_AUTH_MISSING: 2, protocol.E_AUTH_NOKEYS: 2,
                protocol.E_AUTH_LOCKED: 3}
_RECORDS = {alarms.EV_RAISE: eventlog.ALARM_RAISED, alarms.EV_ACK: eventlog.ALARM_ACKED,
                 alarms.EV_CLEAR: eventlog.ALARM_CLEARED}


def err_text(e):
    """'Name: message' of an exception; its name alone (an existing string) if even that text cannot
    be made (a MemoryError, or a message that raises)."""
    try:
        return "%s: %s" % (type(e).__name__, e)
    except Exception:
        return type(e).__name__


class Journal:
    def __init__(self, path, clock, wall, send):
        self.send = send  # a line to the link
        self.failures = 0  # appends that failed
        self.error = None  # why the log could not be opened
        self.log = None  # the eventlog.EventLog
        try:
            self.log = eventlog.EventLog(path, clock, wall)
        except Exception as e:  # no log is bad, no pump is worse: run, and say so in status
            self.error = err_text(e)

    def event(self, code, *vals):
        if self.log is None:
            return 0
        try:
            return self.log.append(code, *vals)
        except Exception:
            self.failures += 1
            return 0

    def refused(self, op, code):
        """A refused change: CHANGE_REFUSED with "op:CODE" (ASCII, at most 32 bytes)."""
        if self.log is not None:
            try:
                self.log.append_raw(eventlog.CHANGE_REFUSED, ("%s:%s" % (op, code)).encode()[:eventlog.MAX_DATA])
            except Exception:
                self.failures += 1

    def on_alarm(self, kind, code):
        """The alarm manager's listener: a record, and an unsolicited line on the link."""
        if kind in _RECORDS:
            self.event(_RECORDS[kind], code)
        self.send(protocol.event_line("alarm", {"kind": kind, "code": alarms.NAMES[code],
                                                "priority": alarms.PRIORITY_NAMES[alarms.priority(code)]}))

    def on_auth(self, kind, info):
        """The authenticator's listener: refusals and holds as AUTH_FAILURE, a lost counter file as
        STORE_PROBLEM."""
        if kind == auth.EV_STATE:
            self.event(eventlog.STORE_PROBLEM, 0, eventlog.STORE_AUTH)
            return
        role = info.get("role")
        r = eventlog.ROLES.index(role) if role in eventlog.ROLES else 255
        if kind == auth.EV_FAIL:
            self.event(eventlog.AUTH_FAILURE, r, _AUTH_REASON.get(info.get("code"), 2))
        elif kind == auth.EV_LOCKOUT:
            self.event(eventlog.AUTH_FAILURE, r, 3)
        elif kind == auth.EV_DUPLICATE:
            self.event(eventlog.AUTH_FAILURE, r, 4)
