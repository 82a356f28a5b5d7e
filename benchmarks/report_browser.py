"""Open a ``segclr predict --report`` page in headless Chromium: console errors, image decoding, sorting, screenshot.

    python benchmarks/report_browser.py REPORT.html [--screenshot PNG] [--width 1280] [--height 1400]

Prints a JSON verdict and exits 1 when the page logged an error (console, uncaught exception, failed
load) or an image did not decode. Talks to the browser over the DevTools protocol on a pipe
(``--remote-debugging-pipe``), so it needs nothing beyond the standard library and a Chromium
binary (Debian: ``apt-get install chromium``; another one via ``SEGCLR_CHROMIUM=/path/to/chrome``).
``tests/inference/test_report_browser.py`` uses it; ``docs/report.png`` was made with it (docs/ready_model.md).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-default-apps", "--disable-extensions", "--mute-audio", "--hide-scrollbars",
         "--remote-debugging-pipe"]
CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")

# Runs in the page: load every image (lazy ones too), wait for each to decode, then sort the table
# by its first numeric column twice and report whether the order flipped.
CHECK_JS = r"""
(async () => {
  const imgs = Array.from(document.images);
  imgs.forEach(img => { img.loading = "eager"; });
  const images = [];
  for (const img of imgs) {
    try {
      await img.decode();
      images.push({ok: img.naturalWidth > 0 && img.naturalHeight > 0, w: img.naturalWidth, h: img.naturalHeight,
                   alt: img.alt});
    } catch (e) {
      images.push({ok: false, alt: img.alt, error: String(e)});
    }
  }
  const table = document.getElementById("volumes");
  let sort = null;
  if (table) {
    const heads = Array.from(table.tHead.rows[0].cells);
    const col = heads.findIndex(th => th.dataset.type === "num");
    const firstCol = () => Array.from(table.tBodies[0].rows).map(r => r.cells[0].textContent);
    const before = firstCol();
    heads[col].click();
    const asc = firstCol();
    heads[col].click();
    const desc = firstCol();
    sort = {column: heads[col].textContent, before, asc, desc,
            aria: heads[col].getAttribute("aria-sort")};
    heads[0].click();  // back to the volume order for the screenshot
  }
  return {title: document.title, n_images: imgs.length, images, sort,
          rows: table ? table.tBodies[0].rows.length : 0,
          sections: document.querySelectorAll("section.vol").length};
})()
"""


def find_chromium() -> str | None:
    env = os.environ.get("SEGCLR_CHROMIUM")
    if env:
        return env if Path(env).is_file() else None
    return next((p for p in map(shutil.which, CANDIDATES) if p), None)


class Browser:
    """Minimal DevTools-protocol client over ``--remote-debugging-pipe`` (fd 3: commands in, fd 4: replies out)."""

    def __init__(self, binary: str, timeout: float = 60.0) -> None:
        self.timeout = timeout
        self.profile = tempfile.TemporaryDirectory(prefix="segclr-chromium-")
        cmd_r, self._cmd_w = os.pipe()
        self._res_r, res_w = os.pipe()
        # keep the child's ends away from 3 and 4 so that dup2 below always makes inheritable copies
        cmd_r_hi, res_w_hi = (_fcntl_dup(cmd_r), _fcntl_dup(res_w))
        os.close(cmd_r)
        os.close(res_w)

        def to_3_and_4() -> None:  # runs in the child, before exec
            os.dup2(cmd_r_hi, 3)
            os.dup2(res_w_hi, 4)

        args = [binary, *FLAGS, f"--user-data-dir={self.profile.name}", "about:blank"]
        self.stderr = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self.stderr,
                                     preexec_fn=to_3_and_4, pass_fds=(3, 4))
        os.close(cmd_r_hi)
        os.close(res_w_hi)
        self._buf = b""
        self._id = 0
        self.events: list[dict] = []

    # -------------------------------------------------------------- protocol
    def _read_message(self, deadline: float) -> dict:
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no reply from Chromium")
            ready, _, _ = select.select([self._res_r], [], [], left)
            if ready:
                chunk = os.read(self._res_r, 1 << 20)
                if not chunk:
                    raise RuntimeError("Chromium closed the DevTools pipe" + self._stderr_tail())
                self._buf += chunk
        raw, self._buf = self._buf.split(b"\0", 1)
        return json.loads(raw)

    def send(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        self._id += 1
        msg = {"id": self._id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._cmd_w, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        while True:
            reply = self._read_message(deadline)
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, method: str, session: str | None = None) -> dict:
        deadline = time.monotonic() + self.timeout
        for i, ev in enumerate(self.events):
            if ev.get("method") == method and (session is None or ev.get("sessionId") == session):
                return self.events.pop(i)
        while True:
            ev = self._read_message(deadline)
            if ev.get("method") == method and (session is None or ev.get("sessionId") == session):
                return ev
            self.events.append(ev)

    def _stderr_tail(self) -> str:
        self.stderr.seek(0)
        tail = self.stderr.read()[-2000:].decode(errors="replace").strip()
        return f"; its stderr ends: {tail}" if tail else ""

    def close(self) -> None:
        try:
            if self.proc.poll() is None:
                try:
                    self._id += 1
                    os.write(self._cmd_w, json.dumps({"id": self._id, "method": "Browser.close"}).encode() + b"\0")
                    self.proc.wait(timeout=10)
                except (OSError, subprocess.TimeoutExpired):
                    self.proc.kill()
                    self.proc.wait(timeout=10)
        finally:
            for fd in (self._cmd_w, self._res_r):
                try:
                    os.close(fd)
                except OSError:
                    pass
            self.stderr.close()
            self.profile.cleanup()


def _fcntl_dup(fd: int) -> int:
    import fcntl

    return fcntl.fcntl(fd, fcntl.F_DUPFD, 10)


def _errors(events: list[dict], session: str) -> list[str]:
    """Console errors, uncaught exceptions and failed loads of the page."""
    out = []
    for ev in events:
        if ev.get("sessionId") != session:
            continue
        m, p = ev.get("method"), ev.get("params", {})
        if m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            out.append("console." + p["type"] + ": " + " ".join(str(a.get("value", a.get("description", "")))
                                                              for a in p.get("args", [])))
        elif m == "Runtime.exceptionThrown":
            d = p.get("exceptionDetails", {})
            out.append("uncaught: " + str(d.get("exception", {}).get("description") or d.get("text")))
        elif m == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
            e = p["entry"]
            out.append(f"log ({e.get('source')}): {e.get('text')} {e.get('url', '')}".strip())
        elif m == "Network.loadingFailed":
            out.append(f"load failed: {p.get('errorText')}")
    return out


def check_report(report: str | Path, screenshot: str | Path | None = None, width: int = 1280, height: int = 1400,
                 binary: str | None = None, timeout: float = 90.0) -> dict:
    """Load ``report`` in headless Chromium; returns {errors, images, sort, ...}; writes ``screenshot`` (PNG)."""
    binary = binary or find_chromium()
    if binary is None:
        raise FileNotFoundError("no Chromium binary found (" + ", ".join(CANDIDATES) + " or SEGCLR_CHROMIUM)")
    url = Path(report).resolve().as_uri()
    browser = Browser(binary, timeout=timeout)
    try:
        version = browser.send("Browser.getVersion").get("product")
        target = browser.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = browser.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for method in ("Runtime.enable", "Log.enable", "Page.enable", "Network.enable"):
            browser.send(method, session=session)
        browser.send("Emulation.setDeviceMetricsOverride",
                     {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False}, session=session)
        t = time.perf_counter()
        nav = browser.send("Page.navigate", {"url": url}, session=session)
        if nav.get("errorText"):
            raise RuntimeError(f"{url}: {nav['errorText']}")
        browser.wait_for("Page.loadEventFired", session=session)
        load_s = time.perf_counter() - t
        result = browser.send("Runtime.evaluate", {"expression": CHECK_JS, "awaitPromise": True,
                                                   "returnByValue": True}, session=session)
        if "exceptionDetails" in result:
            raise RuntimeError(f"check script failed: {result['exceptionDetails']}")
        page = result["result"]["value"]
        if screenshot:
            browser.send("Runtime.evaluate", {"expression": "window.scrollTo(0, 0)"}, session=session)
            shot = browser.send("Page.captureScreenshot", {"format": "png"}, session=session)
            Path(screenshot).parent.mkdir(parents=True, exist_ok=True)
            Path(screenshot).write_bytes(base64.b64decode(shot["data"]))
        browser.send("Runtime.evaluate", {"expression": "1"}, session=session)  # flush pending console events
        errors = _errors(browser.events, session)
    finally:
        browser.close()
    failed = [i for i in page["images"] if not i["ok"]]
    return {"browser": version, "url": url, "load_s": round(load_s, 2), "errors": errors,
            "n_images": page["n_images"], "failed_images": failed, "rows": page["rows"],
            "sections": page["sections"], "sort": page["sort"], "title": page["title"],
            "ok": not errors and not failed}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("report", type=Path)
    ap.add_argument("--screenshot", type=Path, default=None)
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--height", type=int, default=1400)
    args = ap.parse_args(argv)
    res = check_report(args.report, args.screenshot, args.width, args.height)
    print(json.dumps({k: v for k, v in res.items() if k != "sort"} | {"sorted": bool(res["sort"])}, indent=2))
    return 0 if res["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
