"""Mechanics of the browser check: an Airflow api-server on loopback and headless Chromium driven
through chromedriver's W3C WebDriver protocol (plain HTTP, so no Selenium dependency)."""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from pachflow_tools.local.ports import find_free_port

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,1000",
]
INSTALL_HINT = "apt-get update && apt-get install -y chromium chromium-driver"


def find_chromium() -> tuple[str, str] | None:
    """(chromium binary, chromedriver binary), or None when Debian's packages are not installed."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


def chromium_or_skip() -> tuple[str, str]:
    """(chromium, chromedriver), or skip the test with the command that installs them."""
    import pytest

    found = find_chromium()
    if found is None:
        pytest.skip(f"Chromium/chromedriver not installed (install with: {INSTALL_HINT})")
    return found


def _http(method: str, url: str, body: dict | None = None, timeout: float = 60) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.load(response)
    except urllib.error.HTTPError as err:
        raise RuntimeError(
            f"{method} {url} -> {err.code}: {err.read().decode(errors='replace')[:500]}"
        ) from None


def _wait_http(url: str, *, timeout: float, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"{process.args[0]} exited ({process.returncode}); log {log}:\n{log.read_text()[-3000:]}"
            )
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except (OSError, urllib.error.URLError):
            time.sleep(0.5)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f}s; log {log}")


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


class AirflowApiServer:
    """`airflow api-server` on 127.0.0.1 and a free port, everyone admin (loopback-only test server)."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.port = find_free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self.env = dict(env)
        self.env.update(
            {
                "AIRFLOW__API__HOST": "127.0.0.1",
                "AIRFLOW__API__PORT": str(self.port),
                "AIRFLOW__API__BASE_URL": self.url,
                "AIRFLOW__API__WORKERS": "1",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            }
        )
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> AirflowApiServer:
        airflow = str(Path(sys.executable).with_name("airflow"))
        with open(self.log, "wb") as sink:
            self.process = subprocess.Popen(
                [airflow, "api-server", "--port", str(self.port), "--host", "127.0.0.1"],
                stdout=sink, stderr=subprocess.STDOUT, env=self.env, start_new_session=True,
            )  # fmt: skip
        _wait_http(f"{self.url}/api/v2/monitor/health", timeout=180, process=self.process, log=self.log)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process:
            _stop(self.process)


class HeadlessChromium:
    """A chromedriver session of headless Chromium with a fresh profile."""

    def __init__(self, browser: str, driver: str, profile_dir: Path, log: Path) -> None:
        self.browser, self.driver, self.profile_dir, self.log = browser, driver, profile_dir, log
        self.port = find_free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None
        self.session: str | None = None

    def __enter__(self) -> HeadlessChromium:
        with open(self.log, "wb") as sink:
            self.process = subprocess.Popen(
                [self.driver, f"--port={self.port}"],
                stdout=sink,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        _wait_http(f"{self.base}/status", timeout=30, process=self.process, log=self.log)
        args = [*CHROMIUM_FLAGS, f"--user-data-dir={self.profile_dir}"]
        capabilities = {"browserName": "chrome", "goog:chromeOptions": {"binary": self.browser, "args": args}}
        answer = _http(
            "POST", f"{self.base}/session", {"capabilities": {"alwaysMatch": capabilities}}, timeout=180
        )
        self.session = answer["value"]["sessionId"]
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if self.session:
                _http("DELETE", f"{self.base}/session/{self.session}", timeout=30)
        finally:
            if self.process:
                _stop(self.process)

    def _call(self, method: str, path: str, body: dict | None = None, timeout: float = 60) -> object:
        return _http(method, f"{self.base}/session/{self.session}{path}", body, timeout=timeout)["value"]

    def open(self, url: str, timeout: float = 180) -> None:
        """Load ``url``; on a busy machine the UI's first load takes minutes."""
        self._call("POST", "/url", {"url": url}, timeout=timeout)

    def wait_for_links(self, text: str, timeout: float = 60) -> list[dict[str, str]]:
        """Anchors whose text contains ``text`` as [{"text", "href"}], waiting for the SPA to render them."""
        deadline = time.monotonic() + timeout
        xpath = f"//a[contains(normalize-space(.), {json.dumps(text)})]"
        while True:
            found = self._call("POST", "/elements", {"using": "xpath", "value": xpath})
            if found or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        links = []
        for element in found:  # type: ignore[union-attr]
            element_id = next(iter(element.values()))
            links.append(
                {
                    "text": self._call("GET", f"/element/{element_id}/text"),
                    "href": self._call("GET", f"/element/{element_id}/attribute/href"),
                }
            )
        return links

    def page_text(self) -> str:
        return self._call("POST", "/execute/sync", {"script": "return document.body.innerText", "args": []})

    def screenshot(self, path: Path) -> Path:
        path.write_bytes(base64.b64decode(self._call("GET", "/screenshot")))
        return path

    def _element(self, xpath: str, timeout: float) -> str:
        """The id of the first element matching ``xpath``, waiting up to ``timeout`` seconds for it."""
        deadline = time.monotonic() + timeout
        while True:
            found = self._call("POST", "/elements", {"using": "xpath", "value": xpath})
            if found:
                return next(iter(found[0].values()))  # type: ignore[index]
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"no element {xpath} after {timeout:.0f}s; page text:\n{self.page_text()[:2000]}"
                )
            time.sleep(0.5)

    def click(self, xpath: str, timeout: float = 60) -> None:
        """Click the element at ``xpath``; while a toast covers it, wait for the toast to go, as a user would."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._call("POST", f"/element/{self._element(xpath, timeout)}/click", {})
                return
            except RuntimeError as err:
                if "element click intercepted" not in str(err) or time.monotonic() > deadline:
                    raise
            time.sleep(0.5)

    def replace_text(self, xpath: str, text: str, timeout: float = 30) -> None:
        """Clear the input at ``xpath`` and type ``text`` into it, as a user would."""
        element = self._element(xpath, timeout)
        self._call("POST", f"/element/{element}/clear", {})
        self._call("POST", f"/element/{element}/value", {"text": text})

    def is_enabled(self, xpath: str, timeout: float = 30) -> bool:
        """Whether the element at ``xpath`` (e.g. a form's submit button) can be used."""
        return bool(self._call("GET", f"/element/{self._element(xpath, timeout)}/enabled"))

    def wait_for_text(self, text: str, timeout: float = 60) -> str:
        """The page's text once it contains ``text``."""
        deadline = time.monotonic() + timeout
        while True:
            shown = self.page_text()
            if text in shown:
                return shown
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{text!r} not on the page after {timeout:.0f}s; page text:\n{shown[:3000]}"
                )
            time.sleep(0.5)
