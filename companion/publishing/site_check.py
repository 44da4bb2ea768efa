"""Open every page of a built site in a real headless Chromium, as a visitor would.

The site is served on 127.0.0.1 by Python's http.server; Debian's chromium is driven through
Debian's chromedriver by selenium. For each page: no console errors, every audio and image URL
answers 200, every image decodes, every audio element reports a duration > 0. A screenshot of
the first page is saved.
"""

from __future__ import annotations

import functools
import http.server
import tempfile
import threading
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--window-size=1280,1600")  # fmt: skip

# waits until every <audio> has its metadata (or failed), then reports what the page holds
_PAGE_STATE = """
const done = arguments[arguments.length - 1];
const audios = Array.from(document.querySelectorAll('audio'));
const ready = a => a.readyState >= 1 || a.error;
const report = () => done({
  audio: audios.map(a => ({src: a.currentSrc || a.src, duration: a.duration,
                           error: a.error ? a.error.code : null})),
  images: Array.from(document.images).map(i => ({src: i.currentSrc || i.src,
                                                 width: i.naturalWidth, complete: i.complete})),
});
const start = Date.now();
(function wait() {
  const imgs = Array.from(document.images).every(i => i.complete);
  if ((audios.every(ready) && imgs) || Date.now() - start > 20000) report();
  else setTimeout(wait, 100);
})();
"""


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep test output clean
        pass


def _status(url: str) -> int:
    if url.startswith("data:"):  # inline (a notebook page's plots): nothing to fetch; whether
        return 200  # it decodes is the image check's (naturalWidth)
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def check_site(built: str | Path, screenshot: str | Path) -> dict:
    """Check every page of ``built`` (a Jekyll _site folder).

    Returns {page: {"players", "images", "console_errors", "bad_urls", "bad_audio",
    "bad_images"}}; a page passes when the last four are empty.
    """
    built = Path(built)
    handler = functools.partial(_Quiet, directory=str(built))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    report = {}
    try:
        with chromium() as driver:
            pages = sorted(p.relative_to(built).as_posix() for p in built.rglob("*.html"))
            for k, page in enumerate(pages):
                driver.get(f"{base}/{page}")
                state = driver.execute_async_script(_PAGE_STATE)
                logs = [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]
                urls = [a["src"] for a in state["audio"]] + [i["src"] for i in state["images"]]
                report[page] = {
                    "players": len(state["audio"]),
                    "images": len(state["images"]),
                    "console_errors": logs,
                    "bad_urls": [u for u in urls if _status(u) != 200],
                    "bad_audio": [a["src"] for a in state["audio"]
                                  if a["error"] is not None or not (a["duration"] or 0) > 0],
                    "bad_images": [i["src"] for i in state["images"] if not i["width"]],
                }  # fmt: skip
                if k == 0 or page == "index.html":
                    driver.save_screenshot(str(screenshot))
    finally:
        server.shutdown()
    return report


@contextmanager
def chromium() -> Iterator:
    """Debian's headless chromium driven by selenium, with a fresh profile; quit at the end.
    Console messages are kept (``driver.get_log("browser")``)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    with tempfile.TemporaryDirectory() as profile:
        options.add_argument(f"--user-data-dir={profile}")
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
        driver.set_script_timeout(30)
        try:
            yield driver
        finally:
            driver.quit()
