"""The dashboard in a real headless Chromium, against `runt web` and `runt agent` processes
on the real RabbitMQ and MariaDB (a database and a broker prefix of this module's own).

Debian's chromium (/usr/bin/chromium) is driven with Playwright; no browser is
downloaded. Without chromium or Playwright these tests skip, or fail under
RUNT_REQUIRE_SERVICES=1. Every document is served with the service's strict
Content-Security-Policy added, so an inline script or style would break the page here.
Screenshots of each step go to artifacts/dashboard/.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

try:
    from playwright.sync_api import expect
except ImportError:  # the fixture below says what is missing
    expect = None

from broker.topology import Topology
from schemas.config import DatabaseConfig
from tests.conftest import (
    PASSWORD,
    SECRET,
    drop_mysql_database,
    mysql_database_url,
    service_missing,
)
from tests.services import Agents, add_user, delete_topology, free_port
from web.db.migrate import upgrade

pytestmark = [pytest.mark.slow, pytest.mark.rabbitmq, pytest.mark.mysql]

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = REPO / "artifacts" / "dashboard"
USER = "viewer"
# The policy the service sends with every answer; added here to each document as well,
# so the page is held to it whatever the service version under test sends.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
RUN_NAME = "dash <b>e2e</b>"  # must show as text, never as markup
POINTS = "Number(document.querySelector('.chart-svg')?.dataset.points)"  # of the first chart


def wait_healthy(url: str, proc: subprocess.Popen, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"runt web exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=2) as resp:  # noqa: S310
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"runt web did not become healthy:\n{log.read_text()[-3000:]}")


@dataclass
class Service:
    base: str


@pytest.fixture(scope="module")
def playwright_browser():
    if not os.access(CHROMIUM, os.X_OK):
        service_missing(f"{CHROMIUM} is missing (Debian package chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        service_missing("the playwright package is missing (pip install -e '.[test]')")
    manager = sync_playwright().start()
    try:
        browser = manager.chromium.launch(executable_path=CHROMIUM)
        yield browser
        browser.close()
    finally:
        manager.stop()


class SlowModel(BaseHTTPRequestHandler):
    """A language model behind the chat-completions API (a remote service a test cannot
    reach, so faked): it answers with the analysis it was given, in pieces 0.15 s apart,
    so the page has text arriving while the answer is still being written."""

    protocol_version = "HTTP/1.0"  # the answer ends when the connection closes

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        analysis = body["messages"][-1]["content"].split("\n\n", 1)[1]
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        lines = analysis.splitlines(keepends=True)
        for start in range(0, len(lines), 4):
            piece = {"choices": [{"delta": {"content": "".join(lines[start : start + 4])}}]}
            self.wfile.write(f"data: {json.dumps(piece)}\n\n".encode())
            self.wfile.flush()
            time.sleep(0.15)
        self.wfile.write(b"data: [DONE]\n\n")

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def slow_model() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), SlowModel)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def service(playwright_browser, mysql_server, amqp_url, slow_model) -> Iterator[Service]:
    """`runt web` and one `runt agent` as processes, on a database and prefix of their own."""
    name = f"runt_dash_{uuid.uuid4().hex[:10]}"
    db_url = mysql_database_url(mysql_server, name)
    prefix = f"dash{uuid.uuid4().hex[:8]}"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    log = ARTIFACTS / "web.log"
    web = None
    agents = Agents(amqp_url, prefix, db_url)
    try:
        upgrade(DatabaseConfig(url=db_url))
        add_user(db_url, USER)
        port = free_port()
        env = {
            **agents.env,
            "RUNT_SECRET_KEY": SECRET,
            "RUNT_ASSISTANT_LLM_BASE_URL": slow_model,
            "RUNT_ASSISTANT_LLM_MODEL": "slow-model",
        }
        with log.open("wb") as out:
            web = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "cli.main",
                    "web",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                ],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        agents.start("dashboard")
        base = f"http://127.0.0.1:{port}"
        wait_healthy(base, web, log)
        yield Service(base)
    finally:
        if web is not None:
            web.terminate()
            try:
                web.wait(timeout=15)
            except subprocess.TimeoutExpired:
                web.kill()
        agents.stop_all()
        drop_mysql_database(mysql_server, name)
        delete_topology(amqp_url, Topology(prefix))


@dataclass
class Watch:
    """What a page did wrong: uncaught errors, CSP violations, API calls without the
    X-Requested-With header."""

    problems: list[str] = field(default_factory=list)

    def on_console(self, message) -> None:
        if message.type == "error" and "Failed to load resource" not in message.text:
            self.problems.append(f"console: {message.text}")

    def check(self) -> None:
        assert not self.problems, "\n".join(self.problems)


def open_page(browser, service: Service, viewport: dict):
    context = browser.new_context(viewport=viewport)
    watch = Watch()

    def add_csp(route) -> None:
        response = route.fetch()
        route.fulfill(
            response=response, headers={**response.headers, "content-security-policy": CSP}
        )

    def on_request(request) -> None:
        api_call = request.resource_type in ("fetch", "xhr") and request.url.startswith(
            service.base
        )
        if api_call and request.headers.get("x-requested-with") != "runt":
            watch.problems.append(f"no X-Requested-With on {request.method} {request.url}")

    context.route(lambda url: urlsplit(url).path == "/", add_csp)
    page = context.new_page()
    page.on("console", watch.on_console)
    page.on("pageerror", lambda error: watch.problems.append(f"page error: {error}"))
    page.on("request", on_request)
    page.set_default_timeout(20_000)
    return context, page, watch


def shot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def log_in_by_keyboard(page, service: Service) -> None:
    page.goto(service.base + "/")
    expect(page.get_by_text("Log in to see your training runs.")).to_be_visible()
    # The username field has focus; Tab moves on with a visible focus ring; Enter submits.
    expect(page.get_by_label("Username")).to_be_focused()
    page.keyboard.type(USER)
    page.keyboard.press("Tab")
    expect(page.get_by_label("Password")).to_be_focused()
    assert page.evaluate("getComputedStyle(document.activeElement).outlineStyle") != "none"
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Training runs")).to_be_visible()


def wait_js(page, expression: str, timeout: float = 20.0) -> None:
    """Poll a JavaScript expression from here: Playwright's wait_for_function evaluates
    strings inside the page, which the page's CSP (no 'unsafe-eval') rightly refuses."""
    deadline = time.monotonic() + timeout
    while not page.evaluate(expression):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {expression}")
        page.wait_for_timeout(200)


def field_error(page, name: str):
    return page.locator(f".field-{name} .field-error")


def chart_points(page) -> int:
    return int(page.locator(".chart-svg").first.get_attribute("data-points") or 0)


def test_a_run_from_login_to_advice_in_the_browser(playwright_browser, service):
    context, page, watch = open_page(playwright_browser, service, DESKTOP)
    started = time.monotonic()

    # Wrong password: said in words; then the keyboard alone logs in.
    page.goto(service.base + "/")
    page.get_by_label("Username").fill(USER)
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Log in").click()
    expect(page.locator(".form-error")).to_contain_text("invalid username or password")
    shot(page, "01-login-error")
    log_in_by_keyboard(page, service)
    expect(page.get_by_text("Logged in as viewer")).to_be_visible()
    shot(page, "02-runs-empty")

    # The form comes from the presets; the API's errors appear next to their fields.
    page.get_by_role("link", name="New run").first.click()
    preset = page.get_by_label("Preset")
    expect(preset).to_have_value("dqn_cartpole")
    offered = preset.locator("option").all_inner_texts()
    for file in (REPO / "configs").glob("*.yaml"):
        if file.name != "runt.yaml":
            assert any(text.startswith(file.stem) for text in offered), (file, offered)
    dqn = yaml.safe_load((REPO / "configs" / "dqn_cartpole.yaml").read_text())
    expect(page.get_by_label("Learning rate")).to_have_value(str(dqn["learning_rate"]))
    hyper = page.get_by_label("Algorithm hyperparameters (JSON)").input_value()
    assert json.loads(hyper) == dqn["hyperparameters"]

    page.get_by_label("Target episodes").fill("0")
    page.get_by_role("button", name="Start training").click()
    expect(field_error(page, "target_episode")).to_contain_text("greater than or equal to 1")
    expect(page.get_by_label("Target episodes")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_label("Target episodes")).to_be_focused()

    page.get_by_label("Target episodes").fill("3000")
    page.get_by_label("Environment", exact=True).fill("NoSuchEnv-v9")
    page.get_by_role("button", name="Start training").click()
    expect(field_error(page, "env_id")).to_contain_text("NoSuchEnv")
    expect(field_error(page, "target_episode")).to_be_hidden()
    shot(page, "03-field-error")

    # A small CartPole DQN run that goes on until it is stopped.
    page.get_by_label("Environment", exact=True).fill("CartPole-v1")
    page.get_by_label("Stop at evaluation reward").fill("")
    page.get_by_label("Name").fill(RUN_NAME)
    page.get_by_label("Seed").fill("3")
    page.get_by_role("button", name="Start training").click()
    heading = page.get_by_role("heading", level=1)
    expect(heading).to_contain_text(RUN_NAME)  # as text: no <b> element
    assert page.locator("h1 b").count() == 0
    run_id = int(page.url.rsplit("/", 1)[1])
    page.evaluate("window.__sameDocument = true")

    # The chart fills from the live stream, without reloading the page.
    points = page.locator(".chart-svg").first
    wait_js(page, f"{POINTS} >= 10", timeout=60)
    before = int(points.get_attribute("data-points"))
    wait_js(page, f"{POINTS} > {before}", timeout=20)
    assert page.evaluate("window.__sameDocument") is True
    expect(page.locator(".status-line .badge")).to_have_text("running")
    steps_per_s = page.locator(".facts dt", has_text="Env steps/s").locator(
        "xpath=./following-sibling::dd[1]"
    )
    expect(steps_per_s).to_have_text(re.compile(r"^[\d,.]+$"), timeout=20_000)
    shot(page, "04-training")

    # Hover and keyboard both read values off the chart.
    box = points.bounding_box()
    points.hover(position={"x": box["width"] * 0.6, "y": box["height"] / 2})
    readout = page.locator(".chart-readout").first
    expect(readout).to_contain_text("Reward: ")
    expect(readout).to_contain_text("Smoothed: ")
    expect(readout).to_have_text(re.compile(r"^Episode \d+"))
    expect(page.locator(".tooltip")).to_have_count(1)
    shot(page, "05-hover")
    points.focus()
    page.keyboard.press("Home")
    expect(readout).to_have_text(re.compile(r"^Episode 1 "))

    # Stop: the badge follows the run to `stopped`.
    page.get_by_role("button", name="Stop training").click()
    expect(page.locator(".status-line .badge")).to_have_text("stopped", timeout=40_000)
    expect(page.get_by_role("button", name="Stop training")).to_be_hidden()
    page.get_by_text("Status history").click()  # a <details>: its summary is a button
    expect(page.locator(".history li").last).to_contain_text("stopped")
    shot(page, "06-stopped")

    # Inference from a given start: the chart and the table; a wrong observation's
    # error next to its field.
    page.get_by_label("Start observation").fill("1, 2")
    page.get_by_role("button", name="Run the policy").click()
    expect(field_error(page, "observation")).to_contain_text("4 numbers")
    page.get_by_label("Start observation").fill("0, 0, 0.05, 0")
    page.get_by_label("Steps").fill("50")
    page.get_by_role("button", name="Run the policy").click()
    expect(page.locator(".result-summary")).to_contain_text("Total reward")
    rows = page.locator("table.trajectory tbody tr")
    assert 1 <= rows.count() <= 50
    expect(rows.first.locator("td").first).to_have_text("0, 0, 0.05, 0")
    expect(page.locator(".inference-output .chart-svg path.series")).to_have_count(4)
    expect(field_error(page, "observation")).to_be_hidden()
    shot(page, "07-inference")

    # The replay GIF, fetched with the session and shown from a blob: URL.
    page.get_by_role("button", name="Show the replay").click()
    image = page.locator("img.replay")
    expect(image).to_have_attribute("src", re.compile("^blob:"), timeout=60_000)
    wait_js(page, "document.querySelector('img.replay').naturalWidth > 0")
    shot(page, "08-replay")

    # The assistant's advice appears piece by piece, as Markdown rendered safely.
    page.evaluate(
        """() => {
          const panel = document.querySelector('.advice');
          window.__adviceLengths = [];
          new MutationObserver(() => {
            if (panel.dataset.state !== 'streaming') return;
            window.__adviceLengths.push(panel.textContent.length);
          }).observe(panel, {childList: true, subtree: true, characterData: true});
        }"""
    )
    page.get_by_role("button", name="Ask for advice").click()
    expect(page.locator(".advice")).to_have_attribute("data-state", "done", timeout=60_000)
    lengths = [n for n in page.evaluate("window.__adviceLengths") if n > 0]
    # The model writes its answer in pieces 0.15 s apart: the page grew while it streamed.
    assert len(set(lengths)) > 2, lengths
    assert lengths == sorted(lengths), lengths
    advice = page.locator(".advice")
    expect(advice).to_contain_text("slow-model")  # the note naming the model that answered
    expect(advice.locator("h3").first).to_contain_text("Training assistant")
    expect(advice.locator("h4", has_text="1.")).to_have_count(1)
    assert advice.locator("li").count() >= 3
    assert "**" not in advice.inner_text() and len(advice.inner_text()) > 200
    shot(page, "09-assistant")

    # The Markdown renderer never makes markup out of text.
    rendered = page.evaluate(
        """async () => {
          const { renderMarkdown } = await import('/static/js/markdown.js');
          const box = document.createElement('div');
          const text = '# T\\n<img src=x onerror="window.__x=1"> **b** [x](javascript:alert(1))';
          box.append(renderMarkdown(text));
          return {imgs: box.querySelectorAll('img').length, links: box.querySelectorAll('a').length,
                  strong: box.querySelectorAll('strong').length, text: box.textContent};
        }"""
    )
    assert rendered["imgs"] == 0 and rendered["links"] == 0 and rendered["strong"] == 1
    assert "<img src=x" in rendered["text"]

    # A second run, to compare the two on one chart and to filter the list.
    page.get_by_role("link", name="New run").first.click()
    expect(page.get_by_label("Preset")).to_have_value("dqn_cartpole")
    page.get_by_label("Stop at evaluation reward").fill("")
    page.get_by_label("Learning rate").fill("0.001")
    page.get_by_label("Name").fill("slower")
    page.get_by_role("button", name="Start training").click()
    expect(heading).to_contain_text("slower")
    second = int(page.url.rsplit("/", 1)[1])
    wait_js(page, f"{POINTS} >= 5", timeout=60)
    page.get_by_role("button", name="Stop training").click()
    expect(page.locator(".status-line .badge")).to_have_text(re.compile("^stop"))

    page.get_by_role("link", name="Runs", exact=True).click()
    page.get_by_label("Algorithm").select_option("ppo")
    expect(page.get_by_text("No runs match these filters.")).to_be_visible()
    page.get_by_label("Algorithm").select_option("dqn")
    titles = page.locator("table.runs tbody th")
    expect(titles).to_have_text([f"#{second} slower", f"#{run_id} {RUN_NAME}"])  # newest first
    assert "algorithm=dqn" in page.url
    page.get_by_label(f"Select #{second} slower for comparison").check()
    page.get_by_label(f"Select #{run_id} {RUN_NAME} for comparison").check()
    shot(page, "10-runs")
    page.get_by_role("button", name="Compare selected (2)").click()
    expect(page.locator(".chart-svg path.series.line")).to_have_count(2)
    legend = page.locator(".chart-legend li")
    expect(legend).to_have_text([f"#{second} slower", f"#{run_id} {RUN_NAME}"])
    shot(page, "11-compare")

    # Session gone (as when it expires): back to the login page, saying so.
    context.clear_cookies()
    page.get_by_role("link", name="Runs", exact=True).click()
    expect(page.get_by_text("Your session has expired. Log in again to continue.")).to_be_visible()
    log_in_by_keyboard(page, service)

    # The network fails: an error in words, not a blank page. The runs list is loaded
    # first (its Refresh button comes with it): going offline while the list's own request
    # is on its way would leave no button to press.
    refresh = page.get_by_role("button", name="Refresh")
    expect(refresh).to_be_visible()
    context.set_offline(True)
    refresh.click()
    expect(page.locator("main .error")).to_contain_text("Cannot reach the runt service")
    shot(page, "12-offline")
    context.set_offline(False)

    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_text("You have logged out.")).to_be_visible()
    shot(page, "13-logged-out")
    watch.check()
    context.close()
    assert time.monotonic() - started < 110


def test_the_dashboard_at_phone_width(playwright_browser, service):
    context, page, watch = open_page(playwright_browser, service, PHONE)
    log_in_by_keyboard(page, service)
    expect(page.locator("p.count")).to_be_visible()  # the list has loaded
    fits = "document.documentElement.scrollWidth <= window.innerWidth"
    assert page.evaluate(fits)
    shot(page, "20-phone-runs")

    link = page.locator("table.runs tbody th a").first
    if link.count():  # the runs of the test above, when it ran first
        link.click()
        expect(page.get_by_role("button", name="Ask for advice")).to_be_visible()
        wait_js(page, f"{POINTS} >= 0")
        width = page.locator(".chart-svg").first.bounding_box()["width"]
        assert width <= PHONE["width"]
        assert page.evaluate(fits)
        shot(page, "21-phone-run")

    page.get_by_role("link", name="New run").first.click()
    expect(page.get_by_label("Preset")).to_have_value("dqn_cartpole")
    assert page.evaluate(fits)
    box = page.get_by_role("button", name="Start training").bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"]
    shot(page, "22-phone-new-run")
    watch.check()
    context.close()
