# What the pump records and announces: event-log records (a failing log never stops the pump: failures
# are counted for status), alarm transitions as records and link events, auth refusals as records.
from itpump import alarms, auth, eventlog, protocol


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
        rec = (eventlog.ALARM_RAISED if kind == alarms.EV_RAISE else eventlog.ALARM_ACKED if kind == alarms.EV_ACK
               else eventlog.ALARM_CLEARED if kind == alarms.EV_CLEAR else 0)  # not an escalation
        if rec:
            self.event(rec, code)
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
            # the refusal's code -> eventlog.AUTH_REASONS (any other: "role", a refusal by permission)
            code = info.get("code")
            reason = 2
            if code == protocol.E_AUTH_MAC:
                reason = 0
            elif code == protocol.E_AUTH_REPLAY:
                reason = 1
            elif code == protocol.E_AUTH_LOCKED:
                reason = 3
            self.event(eventlog.AUTH_FAILURE, r, reason)
        elif kind == auth.EV_LOCKOUT:
            self.event(eventlog.AUTH_FAILURE, r, 3)
        elif kind == auth.EV_DUPLICATE:
            self.event(eventlog.AUTH_FAILURE, r, 4)
