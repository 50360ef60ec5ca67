"""The web programmer's figures: page load time and bytes per page (headless Chromium through
Playwright), and alarm-to-browser latency over server-sent events, on the virtual board
(docs/figures.md; docs/web.md has the figures)."""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from common import ROOT, print_table, virtual_board

sys.path.insert(0, str(ROOT / "tests" / "e2e"))

RX = {"drug": "morphine", "conc_ug_per_ml": 10000, "catheter_volume_nl": 200000, "mode": "continuous",
      "dose_ng_per_day": 9600000}
FILL = {"drug": "morphine", "conc_ug_per_ml": 10000, "added_nl": 20000000, "removed_nl": 0}
PAGES = ("/", "/program", "/bolus", "/log", "/charts")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--loads", type=int, default=10, help="loads of each page")
    ap.add_argument("--events", type=int, default=50, help="synthetic events for the latency median")
    a = ap.parse_args()
    chromium = shutil.which("chromium")
    if chromium is None:
        print("bench/web.py: chromium missing (apt-get install chromium)")
        return 1
    from playwright.sync_api import sync_playwright

    from pumpctl import web
    from pumpctl.client import Client
    from pumpctl.link import Link
    from pumpctl.session import time_sync_args
    from vbtools import install_keys

    rows = []
    with virtual_board() as (_d, port), tempfile.TemporaryDirectory() as keys_dir:
        ks = install_keys(port, Path(keys_dir))
        with Link(port) as link:
            c = Client(link)
            for op, args in (("time_set", time_sync_args()), ("refill", FILL), ("program", {"rx": RX})):
                c.change(op, args, ks)
        got: dict = {}
        ready = threading.Event()
        http_port = web.free_port()
        th = threading.Thread(target=web.serve, args=(port, http_port, ks.path.parent), daemon=True,
                              kwargs={"say": lambda s: None, "ready": lambda i: (got.update(i), ready.set())})
        th.start()
        ready.wait(30)
        while not got["server"].started:
            time.sleep(0.05)
        svc = got["service"]
        with sync_playwright() as p:
            br = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
            page = br.new_page()
            page.goto(got["links"]["clinician"])
            cookies = page.context.cookies()
            for path in PAGES:
                ms, sizes, reqs = [], [], []
                for _ in range(a.loads):
                    ctx = br.new_context()  # a cold cache: every load fetches what the page needs
                    ctx.add_cookies(cookies)
                    pg = ctx.new_page()
                    cur: list[int] = []
                    pg.on("requestfinished", lambda r, cur=cur: cur.append(
                        r.sizes()["responseBodySize"] + r.sizes()["responseHeadersSize"]))
                    pg.goto(got["base"] + path, wait_until="load")
                    n = json.loads(pg.evaluate("JSON.stringify(performance.getEntriesByType('navigation')[0])"))
                    ms.append(n["loadEventEnd"] - n["startTime"])
                    sizes.append(sum(cur))
                    reqs.append(len(cur))
                    ctx.close()
                rows.append((f"page {path}", f"{statistics.median(ms):.0f} ms",
                             f"median load of {a.loads} (cold cache): {statistics.median(sizes):,.0f} B in "
                             f"{statistics.median(reqs):.0f} requests"))
            page.goto(got["base"] + "/")
            page.wait_for_selector("#live.on")
            page.evaluate("window.itpumpLatencies = []")
            svc.call(lambda s: s.client.request("sim.fault", {"fault": "occlusion"}))
            svc.call(lambda s: s.client.request("sim.advance", {"s": 900, "quantum_ms": 100}))
            page.wait_for_selector('#alarms tr.alarm[data-code="OCCLUSION"]', timeout=120_000)
            real = page.evaluate("window.itpumpLatencies")
            rows.append(("occlusion alarm to browser", f"{statistics.median(real):.1f} ms",
                         f"{len(real)} real event(s) from the board; plus <= 50 ms link poll"))
            page.evaluate("window.itpumpLatencies = []")
            for i in range(a.events):
                svc.publish({"type": "event", "event": {"event": "bench", "n": i}, "t_host_ms": time.time() * 1000})
                time.sleep(0.02)
            page.wait_for_function(f"window.itpumpLatencies.length >= {a.events}")
            lat = page.evaluate("window.itpumpLatencies")
            rows.append(("event to browser (SSE path)", f"{statistics.median(lat):.1f} ms",
                         f"median of {len(lat)}, max {max(lat):.1f} ms"))
            br.close()
        got["server"].should_exit = True
        th.join(10)
    print_table("web programmer (pumpctl web, headless Chromium, virtual board)", rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
