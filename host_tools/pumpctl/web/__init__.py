"""`pumpctl web`: the local clinician programmer (pages in app.py, the link owner in service.py), on
127.0.0.1, holding the board's port while it runs. docs/web.md, docs/pumpctl.md (web/)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

from .. import PumpctlError

HOST = "127.0.0.1"


def _notes_dir() -> Path:
    from .. import history

    return history.data_dir() / "web"


def _note_path(port: str) -> Path:
    return _notes_dir() / (re.sub(r"[^A-Za-z0-9]+", "_", os.path.realpath(port)).strip("_") + ".json")


def owner(port: str) -> dict | None:
    """The running `pumpctl web` that holds port, if any (a note left by a dead process is ignored)."""
    p = _note_path(port)
    try:
        note = json.loads(p.read_text())
        os.kill(int(note["pid"]), 0)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return note


@contextlib.contextmanager
def owner_note(port: str, url: str) -> Iterator[None]:
    p = _note_path(port)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps({"pid": os.getpid(), "url": url, "port": port}))
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            p.unlink()


def busy_text(port: str) -> str | None:
    """What to say when port is busy because `pumpctl web` holds it (None: not ours)."""
    n = owner(port)
    if n is None:
        return None
    return (f"port busy: pumpctl web (pid {n['pid']}) owns the link to {port} while it runs: use its pages at "
            f"{n['url']}, or stop it (Ctrl-C) first")


def free_port(host: str = HOST) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def serve(port: str, http_port: int = 8765, keys_root=None, poll_s: float = 1.0, timeout_s: float = 3.0,
          say: Callable[[str], None] = print, ready: Callable[[dict], None] | None = None) -> None:
    """Open the link, serve the pages until Ctrl-C (or SIGTERM), close the link. A busy serial port or
    HTTP port raises PumpctlError with what to do."""
    import uvicorn

    from .app import create_app
    from .service import PumpService

    with socket.socket() as s:  # the HTTP port first: a clear message before the link is taken
        try:
            s.bind((HOST, http_port))
        except PermissionError:
            raise PumpctlError(f"{HOST}:{http_port}: not allowed to serve on it (ports below 1024 need root): "
                               "choose another with --http-port N") from None
        except OSError:
            raise PumpctlError(f"{HOST}:{http_port} is in use (another pumpctl web?): choose another with "
                               "--http-port N") from None
    svc = PumpService(port, keys_root=keys_root, poll_s=poll_s, timeout_s=timeout_s)
    svc.open()
    tokens = {secrets.token_urlsafe(24): "clinician", secrets.token_urlsafe(24): "patient"}
    base = f"http://{HOST}:{http_port}"
    links = {role: f"{base}/{'patient' if role == 'patient' else ''}?token={t}" for t, role in tokens.items()}
    app = create_app(svc, tokens, {f"{HOST}:{http_port}", f"localhost:{http_port}"})
    config = uvicorn.Config(app, host=HOST, port=http_port, log_level="warning", timeout_graceful_shutdown=1,
                            access_log=False)
    server = uvicorn.Server(config)
    try:
        with owner_note(port, base + "/"):
            svc.start()
            say(f"itpump web programmer for {port} (device {svc.status.get('device_id', '?')}) on {base}/")
            say(f"  clinician (one-time link): {links['clinician']}")
            say(f"  patient   (one-time link): {links['patient']}")
            say("  it owns the link while it runs; Ctrl-C stops it")
            if ready is not None:
                ready({"base": base, "links": links, "service": svc, "server": server})
            server.run()
    finally:
        svc.close()
