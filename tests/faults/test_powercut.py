"""Power cuts on real littlefs (tests/faults/powercut.py under the micropython binary), sampled.

bench/powercut.py runs the same sweep over every cut point."""

import json
import re
import subprocess

import pytest

from pumpctl import REPO_ROOT
from pumpctl.vboard import micropython_exe

SCRIPT = REPO_ROOT / "tests" / "faults" / "powercut.py"


def sweep(*args):
    r = subprocess.run([micropython_exe(), "-X", "heapsize=4M", str(SCRIPT), "--quiet", *args],
                       capture_output=True, text=True, timeout=300)
    m = re.search(r"^RESULT (\{.*\})$", r.stdout, re.M)
    assert r.returncode == 0 and m, r.stdout + r.stderr
    return json.loads(m.group(1)), r.stdout


def test_sampled_power_cuts_lose_nothing_committed():
    res, out = sweep("--step", "5")
    assert res["writes_in_scenario"] > 500  # the scenario really exercises the flash
    assert res["dropped_upto_seq"] > 0  # and rotates the log
    assert res["mark_writes"] > 50  # and moves the reserve mark in place between saves
    assert res["cut_points"] >= res["writes_in_scenario"] // 5
    assert res["failures"] == 0, out
    assert res["committed_records_lost"] == 0, out
    # the reserve rule over-counts by at most one reserve horizon (2 min) of the fastest basal + a bolus
    assert 0 < res["max_overcount_nl"] <= 450000 * 2 // 60 + 20000


@pytest.mark.parametrize("mutation, symptom", [
    ("inplace", "store:"),  # save flushed half-written over the newest copy
    ("noflush", "committed records lost"),  # appends left in littlefs's RAM cache
    ("nomark", "under-counted"),  # recovery ignoring the reserve mark
    ("nomarkfile", "under-counted"),  # recovery ignoring the mark file (the state's mark is stale)
    ("marktorn", "mark file damaged"),  # the mark rewritten in two commits
])
def test_sweep_catches_each_planted_defect(mutation, symptom):
    res, out = sweep("--step", "7", "--mutate", mutation)
    assert res["failures"] > 0 and symptom in out, out
