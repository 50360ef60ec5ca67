"""The web programmer's pages (Starlette, Jinja2 templates, server-rendered SVG, one small script):
one-time links, a session per role, CSRF and Origin checks, prescriptions checked then confirmed.
The access rules: docs/pumpctl.md (web/); the pages: docs/web.md."""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import json
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from .. import PumpctlError, history, prescription, units
from ..session import bolus_args
from . import views

HERE = Path(__file__).parent
COOKIE = "itpump_session"


@dataclass
class Sess:
    role: str
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    pending: dict = field(default_factory=dict)  # a checked prescription waiting for its confirm


class Gate:
    """One-time tokens -> sessions; Host and Origin allow-lists."""

    def __init__(self, tokens: dict[str, str], hosts: set[str]):
        self.tokens = dict(tokens)  # token -> role, removed when used
        self.hosts = hosts
        self.sessions: dict[str, Sess] = {}

    def origins(self) -> set[str]:
        return {f"http://{h}" for h in self.hosts}


class Refused(Exception):
    def __init__(self, status: int, text: str):
        super().__init__(text)
        self.status = status
        self.text = text


def create_app(service, tokens: dict[str, str], hosts: set[str], tz: datetime.tzinfo | None = None,
               who: str | None = None) -> Starlette:
    """service: a PumpService (or a stand-in with the same attributes) that owns the link."""
    gate = Gate(tokens, hosts)
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    tz = tz or datetime.datetime.now().astimezone().tzinfo

    def session(request: Request, role: str | None = "clinician") -> Sess:
        host = request.headers.get("host", "")
        if host not in gate.hosts:
            raise Refused(403, f"refused: this server answers only as {', '.join(sorted(gate.hosts))}")
        s = gate.sessions.get(request.cookies.get(COOKIE, ""))
        if s is None:
            raise Refused(403, "no token, no page: open the link that `pumpctl web` printed")
        if role is not None and s.role != role:
            raise Refused(403, f"this page is for the {role}; this session is the {s.role}'s")
        return s

    async def posted(request: Request, role: str | None = "clinician") -> tuple[Sess, Any]:
        s = session(request, role)
        origin = request.headers.get("origin")
        if origin is None and request.headers.get("referer"):
            parts = urlsplit(request.headers["referer"])
            origin = f"{parts.scheme}://{parts.netloc}"
        if origin not in gate.origins():
            raise Refused(403, "refused: a change must come from this server's own page (Origin)")
        form = await request.form()
        if not secrets.compare_digest(str(form.get("csrf", "")), s.csrf):
            raise Refused(403, "refused: the form's CSRF token does not match this session (reload the page)")
        return s, form

    def page(request: Request, name: str, s: Sess, **ctx) -> Response:
        base = {"csrf": s.csrf, "role": s.role, "st": service.status, "problem": service.error,
                "flash": request.query_params.get("msg"), "err": request.query_params.get("err"),
                "dash": views.dashboard(service.status, service.therapy), "path": request.url.path}
        base.update(ctx)
        return templates.TemplateResponse(request, name, base,
                                          headers={"Cache-Control": "no-store", "X-Frame-Options": "DENY",
                                                   "Content-Security-Policy": "default-src 'self'; "
                                                   "style-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
                                                   "Referrer-Policy": "same-origin"})

    async def run(fn, *a):
        return await asyncio.to_thread(fn, *a)

    def back(path: str, msg: str | None = None, err: str | None = None) -> RedirectResponse:
        q = "?" + ("msg=" + _q(msg) if msg else "err=" + _q(err or "")) if (msg or err) else ""
        return RedirectResponse(path + q, status_code=303)

    # -- pages ----------------------------------------------------------------------------------------
    async def enter(request: Request) -> Response:
        """?token=...: a one-time token becomes a session cookie, then the page without the token."""
        token = request.query_params.get("token")
        if token is not None:
            host = request.headers.get("host", "")
            if host not in gate.hosts:
                return _refuse(Refused(403, "refused: unknown Host"))
            role = gate.tokens.pop(token, None)
            if role is None:
                return _refuse(Refused(403, "this link was used already or is not this server's: "
                                            "run pumpctl web again for a new one"))
            sid = secrets.token_urlsafe(32)
            gate.sessions[sid] = Sess(role)
            r = RedirectResponse("/patient" if role == "patient" else request.url.path, status_code=303)
            r.set_cookie(COOKIE, sid, httponly=True, samesite="strict", path="/")
            return r
        return None  # type: ignore[return-value]

    async def dashboard(request: Request) -> Response:
        r = await enter(request)
        if r is not None:
            return r
        s = session(request, None)
        if s.role == "patient":
            return RedirectResponse("/patient", status_code=303)
        return page(request, "dashboard.html", s, title="Dashboard")

    async def patient(request: Request) -> Response:
        r = await enter(request)
        if r is not None:
            return r
        s = session(request, "patient")
        return page(request, "patient.html", s, title="Patient")

    async def program(request: Request) -> Response:
        s = session(request)
        rx = service.therapy.get("rx")
        text = prescription.to_toml(rx) if rx else _TEMPLATE
        d = prescription.drugs_module()
        lib = [(n, f"{units.fmt_conc(d.limits(n)[0])} to {units.fmt_conc(d.limits(n)[1])}",
                f"{units.fmt_dose_rate(d.limits(n)[2])} to {units.fmt_dose_rate(d.limits(n)[3])}") for n in d.names()]
        return page(request, "program.html", s, title="Prescription", text=text, library=lib)

    async def program_check(request: Request) -> Response:
        s, form = await posted(request)
        text = str(form.get("rx", ""))
        try:
            rx = prescription.loads(text, "prescription")
            current = service.therapy.get("rx")
            try:
                rows = prescription.diff(current, rx)
            except prescription.PrescriptionError:
                rows = prescription.diff(None, rx)
        except PumpctlError as e:
            return page(request, "program.html", s, title="Prescription", text=text, error=str(e), library=[])
        digest = hashlib.sha256(text.encode()).hexdigest()
        s.pending = {"text": text, "digest": digest, "replaces": service.therapy.get("rx_id")}
        changed = any(r[3] for r in rows)
        return page(request, "confirm.html", s, title="Confirm prescription", rows=rows, text=text, digest=digest,
                    changed=changed)

    async def program_send(request: Request) -> Response:
        s, form = await posted(request)
        p = s.pending
        if not p or form.get("digest") != p["digest"]:
            return back("/program", err="the prescription changed after it was checked: check it again")
        if service.therapy.get("rx_id") != p["replaces"]:
            return back("/program", err="the pump's prescription changed meanwhile: check again against it")
        rx = prescription.loads(p["text"], "prescription")
        s.pending = {}
        try:
            await run(service.change, "program", {"rx": rx})
        except PumpctlError as e:
            return back("/program", err=str(e))
        th = service.therapy
        try:
            history.record(service.status.get("device_id", "?"), th.get("rx_id"), th.get("rx") or rx,
                           "pumpctl web", who=who)
        except PumpctlError as e:
            return back("/", err=str(e))
        return back("/", msg=f"prescription #{th.get('rx_id')} programmed and running")

    async def bolus(request: Request) -> Response:
        s = session(request)
        return page(request, "bolus.html", s, title="Bolus and prime")

    async def bolus_post(request: Request) -> Response:
        s, form = await posted(request)
        kind = form.get("kind")
        try:
            minutes = units.to_pump(str(form.get("over", "")), "duration", "over")
            if kind == "prime":
                vol = str(form.get("volume", "")).strip()
                args = bolus_args(None, minutes, True, None)
                if vol:
                    args["volume_nl"] = units.to_pump(vol, "volume", "volume")
            else:
                args = bolus_args("1", minutes)  # kind and duration checked there; the dose from the form
                args["dose_ng"] = units.to_pump(str(form.get("dose", "")), "mass", "dose")
            if form.get("confirm") != "yes":
                raise PumpctlError("tick the confirmation box to start it")
            r = await run(service.change, "bolus", args)
        except PumpctlError as e:
            return back("/bolus", err=str(e))
        return back("/", msg=f"{r.get('kind')} bolus started: {units.fmt_volume(r.get('volume_nl', 0))} at "
                             f"{units.fmt_rate(r.get('rate_nl_per_h'))}")

    async def ack(request: Request) -> Response:
        s, form = await posted(request)
        try:
            r = await run(service.change, "ack", {"code": str(form.get("code", ""))})
        except PumpctlError as e:
            return back("/", err=str(e))
        return back("/", msg=f"acknowledged {', '.join(r.get('acked', [])) or 'nothing'}")

    async def suspend(request: Request) -> Response:
        s, form = await posted(request)
        on = form.get("on") == "1"
        try:
            await run(service.change, "suspend", {"on": on})
        except PumpctlError as e:
            return back("/", err=str(e))
        return back("/", msg="delivery suspended" if on else "delivery resumed")

    async def patient_bolus(request: Request) -> Response:
        s, form = await posted(request, "patient")
        try:
            r = await run(service.change, "patient_bolus", None, "patient")
        except PumpctlError as e:
            return back("/patient", err=str(e))
        return back("/patient", msg=f"bolus started: {units.fmt_volume(r.get('volume_nl', 0))}")

    async def log(request: Request) -> Response:
        s = session(request)
        q = request.query_params
        recs = service.records
        times = _times(recs)
        rows = views.event_rows(recs, times, tz)
        kinds = sorted({r["event"] for r in rows})
        if q.get("event"):
            rows = [r for r in rows if r["event"] == q["event"]]
        if q.get("alarms"):
            rows = [r for r in rows if r["alarm"]]
        if q.get("q"):
            rows = [r for r in rows if q["q"].lower() in (r["event"] + " " + r["details"]).lower()]
        rows = rows[::-1][:500]
        return page(request, "log.html", s, title="Event log", rows=rows, kinds=kinds, q=q,
                    problems=service.log_problems)

    async def charts_page(request: Request) -> Response:
        s = session(request)
        svgs = views.charts_svg(service.records, list(service.samples), _drugs_by_rx(), tz, service.status,
                                service.updated)
        return page(request, "charts.html", s, title="Charts", svgs=svgs)

    async def api_status(request: Request) -> Response:
        session(request, None)
        return JSONResponse({"status": service.status, "therapy": service.therapy, "error": service.error})

    async def events(request: Request) -> Response:
        s = session(request, None)
        loop = asyncio.get_running_loop()
        q: asyncio.Queue = asyncio.Queue()
        unsub = service.subscribe(lambda m: loop.call_soon_threadsafe(q.put_nowait, m))

        def panels() -> str:
            name = "patient_panels.html" if s.role == "patient" else "panels.html"
            tpl = templates.get_template(name)
            return tpl.render(dash=views.dashboard(service.status, service.therapy), csrf=s.csrf, role=s.role,
                              problem=service.error)

        async def stream():
            try:
                yield "retry: 1000\n\n"
                while True:
                    try:
                        m = await asyncio.wait_for(q.get(), 15)
                    except TimeoutError:
                        yield ": keep-alive\n\n"
                        continue
                    if m["type"] == "event":
                        ev = dict(m["event"], t_host_ms=m["t_host_ms"])
                        yield f"event: pump\ndata: {json.dumps(ev)}\n\n"
                    elif m["type"] in ("status", "problem"):
                        data = {"panels": panels(), "log_seq": service.status.get("log_seq")}
                        yield f"event: panels\ndata: {json.dumps(data)}\n\n"
            finally:
                unsub()

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    def _times(recs):
        return views.tlmod.record_times(recs)[0] if recs else []

    def _drugs_by_rx() -> dict[int, str]:
        from ..history import drugs_by_rx

        out = drugs_by_rx(service.status.get("device_id"))
        th = service.therapy
        if th.get("rx_id") and th.get("rx"):
            out[th["rx_id"]] = th["rx"].get("drug")
        return out

    def guarded(fn):
        async def wrapper(request: Request) -> Response:
            try:
                return await fn(request)
            except Refused as e:
                return _refuse(e)

        return wrapper

    routes = [
        Route("/", guarded(dashboard)), Route("/patient", guarded(patient)),
        Route("/program", guarded(program)), Route("/program/check", guarded(program_check), methods=["POST"]),
        Route("/program/send", guarded(program_send), methods=["POST"]),
        Route("/bolus", guarded(bolus)), Route("/bolus", guarded(bolus_post), methods=["POST"]),
        Route("/ack", guarded(ack), methods=["POST"]), Route("/suspend", guarded(suspend), methods=["POST"]),
        Route("/patient/bolus", guarded(patient_bolus), methods=["POST"]),
        Route("/log", guarded(log)), Route("/charts", guarded(charts_page)),
        Route("/api/status", guarded(api_status)), Route("/events", guarded(events)),
        Mount("/static", app=StaticFiles(directory=str(HERE / "static")), name="static"),
    ]
    app = Starlette(routes=routes)
    app.state.gate = gate
    return app


def _refuse(e: Refused) -> Response:
    return HTMLResponse(f"<!doctype html><title>itpump: refused</title><p>{_esc(e.text)}</p>", status_code=e.status,
                        headers={"Cache-Control": "no-store"})


def _esc(t: str) -> str:
    import html

    return html.escape(t)


def _q(t: str) -> str:
    from urllib.parse import quote

    return quote(t[:300])


_TEMPLATE = '''drug = "morphine"
concentration = "10 mg/mL"
catheter_volume = "0.2 mL"
mode = "continuous"
dose = "1 mg/day"
'''
