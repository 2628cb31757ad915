"""What a user of the demo waits for, measured in a real browser: live images after a stroke, Refine per model.

Starts `python -m demo` (the bundled models) on a free port, opens it in headless chromium through Playwright,
paints `--strokes` strokes on the canvas and times each from the end of the stroke (the page's `pointerup`) to
both live images loaded in the page, then clicks Refine `--refines` times and times each model from its start on the
page (the "sampling ..." line under its gallery: on a CPU the models run one after the other) to all its images
loaded, and from the click. Prints the distributions and ends with one line (Refine: per model, from its start):

    live: median X s, p90 Y s; generate: SCDM A s, SDM B s

    python -m benchmarks.demo_latency [--strokes 20] [--refines 5] [--threads N] [--url URL]

Needs the `playwright` package and Debian's chromium (`/usr/bin/chromium`, or `SCDM_CHROMIUM`). Not a test: the
numbers depend on the machine and on what else runs on it.
"""
from __future__ import annotations

import argparse
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np

CHROMIUM = os.environ.get("SCDM_CHROMIUM", "/usr/bin/chromium")
BROWSER_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
REPO = Path(__file__).resolve().parents[1]
STARTUP_TIMEOUT = 300  # s: importing torch and gradio and loading the models on a busy machine
WAIT_MS = 60_000  # per browser wait
LIVE_IDS = ("live-scdm", "live-sdm")
GALLERIES = {"SCDM": "scdm-gallery", "SDM": "sdm-gallery"}

# In the page: the time of the last pointerup, every image that finished loading in the live views (src, time),
# and per gallery the time all its images were loaded again after Refine emptied it.
INSTRUMENT = """([liveIds, galleries]) => {
  const rec = window.__scdm = {up: 0, live: {}, click: 0, done: {}, emptied: {}, started: {}};
  document.addEventListener('pointerup', () => { rec.up = performance.now(); }, true);
  const watch = (root, fn) => { fn(); new MutationObserver(fn).observe(root, {subtree: true, childList: true,
    attributes: true, attributeFilter: ['src']}); };
  for (const id of liveIds) {
    rec.live[id] = [];
    const root = document.getElementById(id);
    const seen = new Set();
    watch(root, () => root.querySelectorAll('img').forEach(img => {
      const src = img.getAttribute('src');
      if (!src || seen.has(src)) return;
      seen.add(src);
      const note = () => rec.live[id].push([src, performance.now()]);
      img.complete && img.naturalWidth ? note() : img.addEventListener('load', note, {once: true});
    }));
  }
  for (const [slot, id] of Object.entries(galleries)) {
    const scores = document.getElementById(id.replace('gallery', 'scores'));
    new MutationObserver(() => {
      if (rec.click && !rec.started[slot] && /sampling/.test(scores.innerText)) rec.started[slot] = performance.now();
    }).observe(scores, {subtree: true, childList: true, characterData: true});
    const root = document.getElementById(id);
    const check = () => {
      if (!rec.click) return;
      const imgs = [...root.querySelectorAll('img')];
      if (imgs.length === 0) { rec.emptied[slot] = true; return; }
      if (!rec.emptied[slot] || rec.done[slot]) return;
      const loaded = imgs.length >= rec.expect && imgs.every(i => i.complete && i.naturalWidth);
      if (loaded) rec.done[slot] = performance.now();
      else imgs.forEach(i => i.addEventListener('load', check, {once: true}));
    };
    watch(root, check);
  }
  document.getElementById('generate').addEventListener('click', () => {
    rec.click = performance.now(); rec.done = {}; rec.emptied = {}; rec.started = {};
  }, true);
}"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def demo_server(args: list[str], timeout: float = STARTUP_TIMEOUT, log_path: str | Path | None = None) -> Iterator[str]:
    """`python -m demo --port FREE *args` in a subprocess; yields the URL it prints, stops it on exit. A RuntimeError
    with the end of its log when it prints none within `timeout` s (its output goes to `log_path` if given)."""
    log = open(log_path, "w+") if log_path is not None else tempfile.TemporaryFile("w+")
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "demo", "--port", str(free_port()), *args]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        url, deadline = None, time.time() + timeout
        while url is None and time.time() < deadline and proc.poll() is None:
            log.seek(0)
            m = re.search(r"Running on local URL:\s+(http://\S+)", log.read())
            url = m.group(1).rstrip("/") if m else None
            if url is None:
                time.sleep(0.5)
        if url is None:
            log.seek(0)
            raise RuntimeError(f"the demo did not print its URL within {timeout:g} s:\n{log.read()[-3000:]}")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def stroke(page, k: int) -> None:
    """Stroke k: a horizontal drag on its own row of the label (every stroke changes the label)."""
    box = page.locator("#canvas canvas").first.bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2  # the label is centred, about 290 px wide
    x0, x1 = cx - 110, cx + 110
    y = cy - 110 + 220 * ((k * 7) % 20) / 19
    page.mouse.move(x0, y)
    page.mouse.down()
    for i in range(1, 16):
        page.mouse.move(x0 + (x1 - x0) * i / 15, y + 3 * np.sin(i))
    page.mouse.up()


def live_latency(page, k: int) -> float:
    """Seconds from the end of stroke k to both live images replaced and loaded."""
    before = page.evaluate("ids => ids.map(id => window.__scdm.live[id].length)", list(LIVE_IDS))
    stroke(page, k)
    page.wait_for_function("([ids, n]) => ids.every((id, i) => window.__scdm.live[id].length > n[i])",
                           arg=[list(LIVE_IDS), before], timeout=WAIT_MS)
    up, times = page.evaluate("""([ids, n]) => [window.__scdm.up,
        ids.map((id, i) => window.__scdm.live[id][n[i]][1])]""", [list(LIVE_IDS), before])
    return (max(times) - up) / 1000


def refine_seconds(page, samples: int) -> tuple[dict[str, float], dict[str, float]]:
    """Per model, seconds from its start on the page ("SCDM: sampling ..." under its gallery; one model after the
    other, the second starts when the first is done) to its gallery showing all its new images; and from the click
    on Refine to the same."""
    page.evaluate(f"window.__scdm.expect = {samples}")
    page.locator("#generate").click()
    page.wait_for_function("slots => slots.every(s => window.__scdm.done[s])", arg=list(GALLERIES),
                           timeout=WAIT_MS * 3)
    done, started, click = page.evaluate("[window.__scdm.done, window.__scdm.started, window.__scdm.click]")
    page.wait_for_function("() => /images in/.test(document.getElementById('info').innerText)", timeout=WAIT_MS)
    own = {slot: (done[slot] - started.get(slot, click)) / 1000 for slot in GALLERIES}
    return own, {slot: (done[slot] - click) / 1000 for slot in GALLERIES}


def measure(url: str, strokes: int, refines: int, samples: int) -> tuple[list[float], list[dict[str, float]]]:
    from playwright import sync_api

    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1800})
            page.goto(url)
            page.locator("#canvas canvas").first.wait_for(timeout=WAIT_MS * 3)
            for id_ in LIVE_IDS:  # the live images of the starting example
                page.locator(f"#{id_} img").first.wait_for(timeout=WAIT_MS * 3)
            page.evaluate(INSTRUMENT, [list(LIVE_IDS), GALLERIES])
            live = []
            for k in range(strokes):
                live.append(live_latency(page, k))
                m = re.search(r"in ([0-9.]+) s", page.locator("#live-info").inner_text())
                print(f"stroke {k + 1:2d}: live images after {live[-1]:.2f} s"
                      + (f" (sampling on the server: {m.group(1)} s)" if m else ""), flush=True)
                page.wait_for_timeout(300)  # let the label views settle
            gen, total = [], []
            for k in range(refines):
                own, since_click = refine_seconds(page, samples)
                gen.append(own)
                total.append(since_click)
                print(f"refine {k + 1}: " + ", ".join(f"{s} {v:.2f} s (done {since_click[s]:.2f} s after the click)"
                                                      for s, v in own.items()), flush=True)
                page.wait_for_timeout(500)
            return live, gen, total
        finally:
            browser.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--strokes", type=int, default=20)
    p.add_argument("--refines", type=int, default=5)
    p.add_argument("--samples", type=int, default=4, help="images per model that Refine makes (the demo's default)")
    p.add_argument("--threads", type=int, default=None, help="the demo's --threads (default: the demo's own)")
    p.add_argument("--url", help="measure an already running demo instead of starting one")
    args = p.parse_args()
    if not Path(CHROMIUM).exists():
        raise SystemExit(f"{CHROMIUM} is missing: apt-get install -y chromium (or set SCDM_CHROMIUM)")
    if args.url:
        live, gen, total = measure(args.url.rstrip("/"), args.strokes, args.refines, args.samples)
    else:
        try:
            with demo_server([] if args.threads is None else ["--threads", str(args.threads)]) as url:
                live, gen, total = measure(url, args.strokes, args.refines, args.samples)
        except RuntimeError as e:
            raise SystemExit(str(e)) from None
    q = np.percentile(live, [0, 50, 90, 100])
    print(f"\nlive, {len(live)} strokes: min {q[0]:.2f} s, median {q[1]:.2f} s, p90 {q[2]:.2f} s, max {q[3]:.2f} s")
    med = {slot: float(np.median([g[slot] for g in gen])) for slot in GALLERIES}
    for slot in GALLERIES:
        print(f"refine {slot}, {len(gen)} clicks, from its start: " + ", ".join(f"{g[slot]:.2f}" for g in gen)
              + f" s; median {med[slot]:.2f} s; from the click: median "
              f"{float(np.median([t[slot] for t in total])):.2f} s")
    print(f"live: median {q[1]:.2f} s, p90 {q[2]:.2f} s; generate: SCDM {med['SCDM']:.2f} s, SDM {med['SDM']:.2f} s")


if __name__ == "__main__":
    main()
