"""Flashing a pump that delivers therapy: refused unless asked for service mode, which the service key
signs; then the firmware is replaced and delivery resumes after the restart, nothing lost."""

import json
from pathlib import Path

import pytest

from vbtools import VBoard, pumpctl_env, run

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def env_board(tmp_path):
    with pumpctl_env(tmp_path / "keys", VBoard(tmp_path / "vb")) as b:
        yield b


def pc(*args, ok=True):
    r = run("pumpctl", *args, timeout=120)
    assert "Traceback" not in r.stderr, r.stderr
    assert (r.returncode == 0) == ok, f"pumpctl {args}: {r.returncode}\n{r.stdout}\n{r.stderr}"
    return r


def status():
    return json.loads(pc("status", "--json").stdout)["result"]


def test_flash_over_a_running_pump_goes_through_service_mode(env_board):
    pc("flash", "--board", "sim", "--quiet")
    pc("provision")
    pc("refill", "--drug", "morphine", "--conc-ug-per-ml", "10000", "--added-ml", "20", "--removed-ml", "0")
    pc("program", str(ROOT / "examples" / "morphine_continuous.toml"), "--yes")
    before = status()
    assert before["running"] and before["therapy"]["suspended"] is False

    r = pc("flash", "--board", "sim", "--quiet", ok=False)  # no accident: a running pump is not interrupted
    assert "therapy is running" in r.stderr and "--service" in r.stderr and len(r.stderr.splitlines()) == 1
    mid = status()
    assert mid["running"] and mid["boot_count"] == before["boot_count"]

    r = pc("flash", "--board", "sim", "--service", "--mpy")
    assert "service mode: delivery suspended" in r.stdout and "verified by SHA-256" in r.stdout
    after = status()
    assert after["boot_count"] == before["boot_count"] + 1  # restarted on the new firmware
    assert after["therapy"] is not None and after["running"], after  # delivery resumes after the restart
    assert after["delivered_total_nl"] >= before["delivered_total_nl"]
    assert after["reset_cause"] == "SOFT" and "WATCHDOG_RESET" not in after["alarms"]
    logs = pc("logs", "--format", "json").stdout
    kinds = [r["fields"].get("kind") for r in json.loads(logs) if r["event"] == "safety"]
    assert "service" in kinds, kinds
