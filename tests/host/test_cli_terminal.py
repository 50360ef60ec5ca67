"""pumpctl in a terminal, as people see it: a real pty (stdin, stdout and stderr a tty), the text read
back from it as it would be on the screen, the answer typed in."""

import os
import pty
import select
import subprocess
import sys
import time


def in_terminal(code: str, answer: bytes | None, deadline_s: float = 30.0) -> tuple[int, str]:
    """Run python code on a pty; type answer once a question waits (ends in "? " or "] "); return (exit
    code, screen text)."""
    master, slave = pty.openpty()
    p = subprocess.Popen([sys.executable, "-c", code], stdin=slave, stdout=slave, stderr=slave, close_fds=True,
                         env={**os.environ, "TERM": "xterm", "COLUMNS": "100"})
    os.close(slave)
    seen = b""
    end = time.monotonic() + deadline_s  # a guard against a hang, not a measurement
    try:
        while time.monotonic() < end:
            r, _, _ = select.select([master], [], [], 0.2)
            if r:
                try:
                    chunk = os.read(master, 4096)
                except OSError:  # the child closed the terminal
                    break
                if not chunk:
                    break
                seen += chunk
                if answer is not None and seen.endswith(b" ") and seen.rstrip().endswith((b"?", b"]")):
                    os.write(master, answer + b"\r")
                    answer = None
            elif p.poll() is not None:
                break
        return p.wait(timeout=10), seen.decode(errors="replace").replace("\r\n", "\n")
    finally:
        p.kill()
        os.close(master)


CONFIRM = ("import sys; from pumpctl.commands.therapy import _confirm; "
           "sys.exit(0 if _confirm('program morphine_continuous.toml into the pump?') else 3)")


def test_the_confirmation_shows_its_default_and_takes_the_answer():
    """In tmux the question read "program morphine_continuous.toml into the pump?  n": rich took "[y/N]"
    for markup and dropped it, so nobody saw that Enter means no."""
    rc, screen = in_terminal(CONFIRM, b"y")
    assert "program morphine_continuous.toml into the pump? [y/N] y" in screen and rc == 0, screen
    rc, screen = in_terminal(CONFIRM, b"")
    assert "into the pump? [y/N] " in screen and rc == 3, screen


def test_output_cut_short_by_the_reader_is_no_traceback():
    """`pumpctl suspend --json | head -8` ended in a BrokenPipeError traceback (twice over: the error
    envelope hit the closed pipe too). The reader went away: quietly, exit 1, as rich's tables do."""
    for args in (["drugs"], ["drugs", "--json"], ["--print-completion", "bash"]):  # rich, JSON, a long text
        r, w = os.pipe()
        os.close(r)  # the reader is gone before anything is written
        try:
            p = subprocess.run([sys.executable, "-m", "pumpctl.cli", *args], stdout=w, stderr=subprocess.PIPE,
                               timeout=60)
        finally:
            os.close(w)
        assert p.returncode == 1 and p.stderr == b"", (args, p.returncode, p.stderr.decode())
