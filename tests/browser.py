"""Headless Chromium over the DevTools protocol, stdlib only (report test).

:func:`render` opens a page in a fresh headless Chromium, waits for it to load
and settle, and returns a PNG screenshot, the page's text and every console
error, uncaught exception and failed request the page produced. The DevTools
protocol runs over a WebSocket; the small client below speaks just enough of
RFC 6455 (masked client frames, text and continuation frames, ping/pong).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import struct
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
]


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


class WebSocket:
    """A minimal blocking WebSocket client (enough for the DevTools protocol)."""

    def __init__(self, url: str, timeout: float = 30):
        assert url.startswith("ws://"), url
        hostport, _, path = url[len("ws://") :].partition("/")
        host, _, port = hostport.partition(":")
        self.sock = socket.create_connection((host, int(port or 80)), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        request = (
            f"GET /{path} HTTP/1.1\r\nHost: {hostport}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        self.sock.sendall(request.encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(1)
            if not chunk:
                raise ConnectionError("WebSocket handshake: connection closed")
            head += chunk
        if b" 101 " not in head.split(b"\r\n", 1)[0]:
            raise ConnectionError(f"WebSocket handshake refused: {head.decode(errors='replace')}")

    def _recv_exact(self, n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("WebSocket closed")
            buf += chunk
        return buf

    def send(self, text: str) -> None:
        payload = text.encode()
        header = bytearray([0x81])  # FIN + text frame
        n = len(payload)
        if n < 126:
            header.append(0x80 | n)
        elif n < 1 << 16:
            header += bytes([0x80 | 126]) + struct.pack(">H", n)
        else:
            header += bytes([0x80 | 127]) + struct.pack(">Q", n)
        mask = os.urandom(4)
        header += mask
        self.sock.sendall(bytes(header) + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))

    def _send_control(self, opcode: int, payload: bytes = b"") -> None:
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + masked)

    def recv(self) -> str:
        message = b""
        while True:
            b0, b1 = self._recv_exact(2)
            opcode, n = b0 & 0x0F, b1 & 0x7F
            if n == 126:
                n = struct.unpack(">H", self._recv_exact(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", self._recv_exact(8))[0]
            mask = self._recv_exact(4) if b1 & 0x80 else None
            payload = self._recv_exact(n)
            if mask:
                payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            if opcode == 0x8:
                raise ConnectionError("WebSocket closed by the browser")
            if opcode == 0x9:
                self._send_control(0xA, payload)
                continue
            if opcode in (0x1, 0x2, 0x0):
                message += payload
                if b0 & 0x80:
                    return message.decode()

    def close(self) -> None:
        try:
            self._send_control(0x8)
        except OSError:
            pass
        self.sock.close()


@dataclass
class Page:
    screenshot: bytes
    text: str
    title: str
    errors: list[str] = field(default_factory=list)
    console: list[str] = field(default_factory=list)


class DevTools:
    def __init__(self, ws: WebSocket):
        self.ws = ws
        self.next_id = 0
        self.events: list[dict] = []

    def call(self, method: str, timeout: float = 60, **params) -> dict:
        self.next_id += 1
        my_id = self.next_id
        self.ws.send(json.dumps({"id": my_id, "method": method, "params": params}))
        t0 = time.time()
        while time.time() - t0 < timeout:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == my_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            if "method" in msg:
                self.events.append(msg)
        raise TimeoutError(method)

    def wait_for(self, method: str, timeout: float = 60) -> dict:
        t0 = time.time()
        for ev in self.events:
            if ev["method"] == method:
                return ev
        while time.time() - t0 < timeout:
            msg = json.loads(self.ws.recv())
            if "method" in msg:
                self.events.append(msg)
                if msg["method"] == method:
                    return msg
        raise TimeoutError(method)

    def drain(self, seconds: float) -> None:
        """Collect events for a while (the page settles: scripts run, images decode)."""
        self.ws.sock.settimeout(0.2)
        t0 = time.time()
        try:
            while time.time() - t0 < seconds:
                try:
                    msg = json.loads(self.ws.recv())
                except TimeoutError:
                    continue
                if "method" in msg:
                    self.events.append(msg)
        finally:
            self.ws.sock.settimeout(30)


def _errors(events: list[dict]) -> tuple[list[str], list[str]]:
    errors, console = [], []
    for ev in events:
        p = ev.get("params", {})
        if ev["method"] == "Runtime.consoleAPICalled":
            text = " ".join(str(a.get("value", a.get("description", ""))) for a in p.get("args", []))
            console.append(f"{p.get('type')}: {text}")
            if p.get("type") in ("error", "assert"):
                errors.append(f"console.{p.get('type')}: {text}")
        elif ev["method"] == "Runtime.exceptionThrown":
            d = p.get("exceptionDetails", {})
            errors.append(f"exception: {d.get('exception', {}).get('description') or d.get('text')}")
        elif ev["method"] == "Log.entryAdded":
            e = p.get("entry", {})
            console.append(f"{e.get('level')}: {e.get('text')}")
            if e.get("level") == "error":
                errors.append(f"log ({e.get('source')}): {e.get('text')} {e.get('url', '')}".strip())
        elif ev["method"] == "Network.loadingFailed":
            if not p.get("canceled"):
                errors.append(f"request failed: {p.get('errorText')}")
    return errors, console


CLICK_JS = """(() => {
  const want = %s;
  const els = [...document.querySelectorAll('a, button, li, div, span, td')]
    .filter(e => e.innerText && e.innerText.trim() === want);
  if (!els.length) return false;
  els[els.length - 1].click();
  return true;
})()"""


def render(
    url: str,
    width: int = 1280,
    height: int = 900,
    settle_s: float = 3.0,
    timeout: float = 120,
    click: tuple[str, ...] = (),
    scripts: tuple[str, ...] = (),
) -> Page:
    """Load ``url`` in a fresh headless Chromium; screenshot, text and errors. The browser is stopped by pid.

    ``click``: texts of elements to click in turn after loading (e.g. a report category), each
    followed by ``settle_s`` of waiting; a text that is not on the page raises. ``scripts``: JavaScript
    expressions evaluated after the clicks (each must return true), each followed by ``settle_s``."""
    exe = find_chromium()
    if exe is None:
        raise FileNotFoundError("no chromium on PATH")
    profile = Path(tempfile.mkdtemp(prefix="mibench-chromium-"))
    proc = subprocess.Popen(
        [exe, *FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}", "about:blank"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        port_file = profile / "DevToolsActivePort"
        t0 = time.time()
        while not (port_file.exists() and port_file.read_text().strip()):
            if proc.poll() is not None:
                raise RuntimeError(f"chromium exited: {proc.stderr.read().decode(errors='replace')[-2000:]}")
            if time.time() - t0 > timeout:
                raise TimeoutError("chromium did not open its DevTools port")
            time.sleep(0.2)
        port = int(port_file.read_text().split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=30) as fh:
            targets = json.load(fh)
        page = next(t for t in targets if t.get("type") == "page")
        ws = WebSocket(page["webSocketDebuggerUrl"], timeout=timeout)
        try:
            dt = DevTools(ws)
            for domain in ("Page", "Runtime", "Log", "Network"):
                dt.call(f"{domain}.enable")
            dt.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False)
            dt.call("Page.navigate", url=url)
            dt.wait_for("Page.loadEventFired", timeout=timeout)
            dt.drain(settle_s)
            for label in click:
                res = dt.call("Runtime.evaluate", expression=CLICK_JS % json.dumps(label), returnByValue=True)
                if not res["result"].get("value"):
                    raise LookupError(f"nothing to click with the text {label!r}")
                dt.drain(settle_s)
            for js in scripts:
                res = dt.call("Runtime.evaluate", expression=js, returnByValue=True)
                if res["result"].get("value") is not True:
                    raise RuntimeError(f"script did not return true: {js} -> {res}")
                dt.drain(settle_s)
            text = dt.call("Runtime.evaluate", expression="document.body ? document.body.innerText : ''")
            title = dt.call("Runtime.evaluate", expression="document.title")
            shot = dt.call("Page.captureScreenshot", format="png")
            errors, console = _errors(dt.events)
            return Page(
                screenshot=base64.b64decode(shot["data"]),
                text=text["result"].get("value", ""),
                title=title["result"].get("value", ""),
                errors=errors,
                console=console,
            )
        finally:
            ws.close()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(profile, ignore_errors=True)
