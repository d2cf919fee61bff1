"""TensorBoard on a smoke run: its HTTP API lists the scalar tags, and (slow) headless Chromium shows
the run and the `loss/` tags on the scalars page.

The browser is driven through chromedriver's WebDriver HTTP API with the standard library: the scalars
page is built from web components whose text sits in shadow roots, which `chromium --dump-dom` leaves
out, so the test reads the page's text with a script instead. Debian: `apt-get install chromium
chromium-driver`.
"""

import base64
import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

RUN_NAME = "smoke-run"
LOSS_TAGS = {"loss/nll", "loss/policy", "loss/total"}

# Text of the whole page, including the shadow roots of web components.
PAGE_TEXT = """
const texts = [];
const walk = (node) => {
  if (node.nodeType === Node.TEXT_NODE) { texts.push(node.textContent); return; }
  if (node.shadowRoot) walk(node.shadowRoot);
  for (const child of node.childNodes) walk(child);
};
walk(document.body);
return texts.join(" ");
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_json(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.load(response)


def wait_for(condition, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = condition()
            if value:
                return value
        except (OSError, urllib.error.URLError, ValueError):
            pass
        time.sleep(0.5)
    raise TimeoutError(f"gave up after {timeout} s waiting for {what}")


def stop(process):
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture(scope="module")
def tensorboard(smoke_run_dir, tmp_path_factory):
    """Base URL of a TensorBoard serving a copy of the smoke run (as run `smoke-run`) on a loopback port."""
    logdir = tmp_path_factory.mktemp("tensorboard-logs")
    shutil.copytree(smoke_run_dir, logdir / RUN_NAME)  # the fixture's dir must not be written into
    port = free_port()
    log = open(logdir.parent / "tensorboard.log", "wb")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tensorboard.main",
            "--logdir",
            str(logdir),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--reload_interval",
            "1",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: RUN_NAME in get_json(f"{base}/data/runs"), 90, "TensorBoard to list the run")
        yield base
    finally:
        stop(process)
        log.close()


def test_scalars_api_lists_the_loss_tags(tensorboard):
    tags = wait_for(lambda: get_json(f"{tensorboard}/data/plugin/scalars/tags").get(RUN_NAME), 30, "scalar tags")
    assert LOSS_TAGS <= set(tags)
    assert {"reward/mean", "logq/tT", "policy/entropy"} <= set(tags)
    images = get_json(f"{tensorboard}/data/plugin/images/tags")[RUN_NAME]
    assert {"images/query_strategy", "images/posteriors"} <= set(images)


class WebDriver:
    """The few WebDriver commands this test needs, over chromedriver's HTTP API."""

    def __init__(self, port):
        self.base = f"http://127.0.0.1:{port}"
        self.session = None

    def call(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.base + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=120) as response:
            return json.load(response)["value"]

    def start(self, binary, args):
        options = {"binary": binary, "args": args}
        caps = {"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": options}}}
        self.session = self.call("POST", "/session", caps)["sessionId"]

    def run(self, method, command, body=None):
        return self.call(method, f"/session/{self.session}/{command}", body)

    def quit(self):
        if self.session:
            self.call("DELETE", f"/session/{self.session}")


@pytest.mark.slow
def test_scalars_page_in_headless_chromium(tensorboard, tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_binary = shutil.which("chromedriver")
    if chromium is None or driver_binary is None:
        pytest.skip(
            "needs the `chromium` and `chromedriver` binaries (Debian: apt-get install chromium chromium-driver)"
        )
    port = free_port()
    driver_process = subprocess.Popen(
        [driver_binary, f"--port={port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    browser = WebDriver(port)
    try:
        wait_for(lambda: browser.call("GET", "/status")["ready"], 30, "chromedriver")
        browser.start(
            chromium,
            [
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--window-size=1400,1000",
                f"--user-data-dir={tmp_path / 'profile'}",
            ],
        )
        browser.run("POST", "url", {"url": f"{tensorboard}/#scalars"})

        def page_lists_run_and_losses():
            text = browser.run("POST", "execute/sync", {"script": PAGE_TEXT, "args": []})
            return text if RUN_NAME in text and any(tag in text for tag in LOSS_TAGS) else None

        text = wait_for(page_lists_run_and_losses, 60, "the scalars page to list the run and its loss tags")
        shown = {tag for tag in LOSS_TAGS if tag in text}
        assert shown, text[:2000]
        time.sleep(1)  # let the charts draw before the screenshot
        screenshot = tmp_path / "tensorboard-scalars.png"
        screenshot.write_bytes(base64.b64decode(browser.run("GET", "screenshot")))
        assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and screenshot.stat().st_size > 10_000
        print(f"scalars page shows run {RUN_NAME!r} and {sorted(shown)}; screenshot: {screenshot}")
    finally:
        try:
            browser.quit()
        finally:
            stop(driver_process)
