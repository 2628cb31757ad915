"""The README's demo picture: `python -m demo` (the bundled models) in headless chromium, a corrupted example,
the live images, then Refine with its galleries and re-segmentation views.

    python -m benchmarks.demo_screenshot [--out docs/demo.png] [--corruption random] [--severity 0.6]

Needs Playwright and Debian's chromium, like `benchmarks.demo_latency`.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from .demo_latency import BROWSER_ARGS, CHROMIUM, WAIT_MS, demo_server, stroke


def shoot(url: str, out: Path, corruption: str, severity: float) -> None:
    from playwright import sync_api

    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1500})
            page.set_default_timeout(WAIT_MS * 3)
            page.goto(url)
            for slot in ("scdm", "sdm"):
                page.locator(f"#live-{slot} img").first.wait_for()
            page.locator("#corruption input").click()
            page.get_by_role("option", name=corruption, exact=True).click()
            box = page.locator("#severity input[type=number]").first
            box.fill(f"{severity:g}")
            box.press("Enter")
            stroke(page, 3)
            page.wait_for_timeout(1500)
            page.locator("#generate").click()
            for slot in ("scdm", "sdm"):
                page.wait_for_function(f"document.querySelectorAll('#{slot}-reseg img').length >= 4")
            page.wait_for_function("() => /images in/.test(document.getElementById('info').innerText)")
            page.wait_for_timeout(1000)
            out.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(out), full_page=True)
        finally:
            browser.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("docs/demo.png"))
    p.add_argument("--corruption", default="random")
    p.add_argument("--severity", type=float, default=0.6)
    args = p.parse_args()
    if not Path(CHROMIUM).exists():
        raise SystemExit(f"{CHROMIUM} is missing: apt-get install -y chromium (or set SCDM_CHROMIUM)")
    try:
        with demo_server([]) as url:
            shoot(url, args.out, args.corruption, args.severity)
    except RuntimeError as e:
        raise SystemExit(str(e)) from None
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
