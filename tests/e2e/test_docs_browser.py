"""/docs and /redoc in a real headless Chromium that cannot reach anything but the server.

Every request to another host goes to a proxy that does not exist and every other name
fails to resolve, so a page that still fetched a script or a stylesheet from a CDN would
render nothing. The last test drives Swagger UI as a person does: "Authorize" with a key,
then "Try it out" and "Execute" on POST /api/orders.
"""

from __future__ import annotations

import itertools
import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.sync.client import ClientConnection, connect

from tests.e2e.all_in_one import Running, all_in_one
from tests.support import local_http

CHROMIUM = shutil.which("chromium")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        CHROMIUM is None,
        reason="needs Chromium: `apt-get install chromium` (.ci/run installs it when missing)",
    ),
]

OFFLINE = [
    "--proxy-server=127.0.0.1:9",  # nothing listens there: every proxied request fails
    "--proxy-bypass-list=127.0.0.1",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
]
HEADLESS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
RENDER_BUDGET_MS = 15_000
WAIT_SECONDS = 30.0
PLACE_ORDER = "#operations-producers-place_order_api_orders_post"


@pytest.fixture
def running(sqlite_url: str, redis_url: str, redis_prefix: str) -> Iterator[Running]:
    with all_in_one(sqlite_url, redis_url, redis_prefix) as running:
        yield running


def chromium(profile: Path, *arguments: str) -> list[str]:
    """The command line of a headless, offline Chromium with the profile folder given."""
    assert CHROMIUM is not None
    return [CHROMIUM, *HEADLESS, *OFFLINE, f"--user-data-dir={profile}", *arguments]


def rendered_dom(url: str, profile: Path) -> str:
    """The page's DOM once its scripts ran (Chromium's --dump-dom)."""
    command = chromium(profile, f"--virtual-time-budget={RENDER_BUDGET_MS}", "--dump-dom", url)
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def document(running: Running) -> dict[str, Any]:
    served: dict[str, Any] = local_http.get(f"{running.base_url}/openapi.json").json()
    return served


def test_swagger_ui_renders_every_operation_offline(running: Running, tmp_path: Path) -> None:
    dom = rendered_dom(f"{running.base_url}/docs", tmp_path / "profile")
    assert 'class="swagger-ui"' in dom
    assert 'data-path="/api/customers/{customer_id}"' in dom
    assert 'data-path="/api/orders"' in dom
    for path, path_item in document(running)["paths"].items():
        assert f'data-path="{path}"' in dom, path
        for method, operation in path_item.items():
            block = f'id="operations-{operation["tags"][0]}-{operation["operationId"]}"'
            assert block in dom, f"{method} {path}"
    assert "btn authorize" in dom  # the Token scheme gives Swagger UI its Authorize button


def test_redoc_renders_every_operation_offline(running: Running, tmp_path: Path) -> None:
    dom = rendered_dom(f"{running.base_url}/redoc", tmp_path / "profile")
    secured = 0
    for path, path_item in document(running)["paths"].items():
        for method, operation in path_item.items():
            assert f'id="operation/{operation["operationId"]}"' in dom, f"{method} {path}"
            title = operation.get("summary") or operation["operationId"]
            assert f">{title}" in dom, f"{method} {path}: no title {title!r}"
            secured += "security" in operation
    # Each operation that needs a key says so, naming the Token scheme.
    assert dom.count("Authorizations:") == secured > 0
    assert "<i>Token</i>" in dom


class DevTools:
    """A Chrome DevTools protocol session on one page: commands, events and waits."""

    def __init__(self, socket: ClientConnection) -> None:
        self._socket = socket
        self._ids = itertools.count(1)
        self.events: list[dict[str, Any]] = []

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        """Send a command, keep the events that arrive meanwhile, return its result."""
        number = next(self._ids)
        self._socket.send(json.dumps({"id": number, "method": method, "params": params}))
        while True:
            message = json.loads(self._socket.recv(timeout=WAIT_SECONDS))
            if message.get("id") != number:
                self.events.append(message)
                continue
            if "error" in message:
                raise AssertionError(f"{method}: {message['error']}")
            result: dict[str, Any] = message.get("result", {})
            return result

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page."""
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise AssertionError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str) -> Any:
        """The expression's value once it is truthy."""
        deadline = time.monotonic() + WAIT_SECONDS
        while time.monotonic() < deadline:
            value = self.evaluate(expression)
            if value:
                return value
            time.sleep(0.1)
        raise AssertionError(f"never true: {expression}")

    def click(self, selector: str) -> None:
        self.wait_for(f"document.querySelector({json.dumps(selector)}) !== null")
        self.evaluate(f"document.querySelector({json.dumps(selector)}).click()")

    def requests(self) -> list[dict[str, Any]]:
        """Every request the page sent so far."""
        return [
            event["params"]
            for event in self.events
            if event.get("method") == "Network.requestWillBeSent"
        ]


@pytest.fixture
def devtools(tmp_path: Path) -> Iterator[DevTools]:
    profile = tmp_path / "profile"
    command = chromium(profile, "--remote-debugging-port=0", "about:blank")
    browser = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        port_file = profile / "DevToolsActivePort"  # Chromium writes its port there
        deadline = time.monotonic() + WAIT_SECONDS
        while not port_file.exists() or not port_file.read_text().strip():
            assert browser.poll() is None, "Chromium exited"
            assert time.monotonic() < deadline, "Chromium opened no DevTools port"
            time.sleep(0.05)
        port = port_file.read_text().split()[0]
        with httpx.Client(trust_env=False) as client:
            targets = client.get(f"http://127.0.0.1:{port}/json/list").json()
        (page,) = (target for target in targets if target["type"] == "page")
        with connect(page["webSocketDebuggerUrl"], max_size=None) as socket:
            session = DevTools(socket)
            session.call("Network.enable")
            session.call("Page.enable")
            yield session
    finally:
        browser.terminate()
        try:
            browser.wait(timeout=10)
        except subprocess.TimeoutExpired:
            browser.kill()
            browser.wait(timeout=10)


def test_authorize_then_try_it_out_places_an_order(running: Running, devtools: DevTools) -> None:
    schemas = document(running)["components"]["schemas"]
    customer = schemas["RegisterCustomer"]["examples"][0]
    order = schemas["PlaceOrder"]["examples"][0]
    registered = local_http.post(
        f"{running.base_url}/api/customers",
        json=customer,
        headers={"Authorization": f"Token {running.admin_key}"},
    )
    assert registered.status_code == 201, registered.text
    assert registered.json()["id"] == order["customer_id"]  # the example's customer exists
    key = running.container.write_service.issue_api_key("docs-browser", "producer").key

    devtools.call("Page.navigate", url=f"{running.base_url}/docs")
    devtools.wait_for("document.querySelectorAll('.opblock').length > 0")
    configs = devtools.evaluate(
        "(() => { const c = ui.getConfigs();"
        " return {persist: c.persistAuthorization, url: c.url}; })()"
    )
    assert configs == {"persist": False, "url": "/openapi.json"}

    devtools.click(".auth-wrapper .authorize")
    devtools.evaluate("document.querySelector('.modal-ux input').focus()")
    devtools.call("Input.insertText", text=f"Token {key}")
    devtools.click(".modal-ux .auth-btn-wrapper .authorize")
    devtools.wait_for("document.querySelector('.modal-ux').innerText.includes('Logout')")
    devtools.click(".modal-ux .btn-done")

    devtools.click(f"{PLACE_ORDER} .opblock-summary-control")
    devtools.click(f"{PLACE_ORDER} .try-out__btn")
    body = devtools.wait_for(f"document.querySelector('{PLACE_ORDER} textarea')?.value")
    assert json.loads(body) == order
    devtools.click(f"{PLACE_ORDER} .execute")
    status = devtools.wait_for(
        f"document.querySelector('{PLACE_ORDER} .live-responses-table tbody"
        " .response-col_status')?.innerText"
    )
    answer = devtools.evaluate(
        f"document.querySelector('{PLACE_ORDER} .live-responses-table tbody"
        " .response-col_description pre')?.innerText"
    )
    assert status.strip() == "201", answer
    assert set(json.loads(answer)) == {"order_id", "position"}

    sent = devtools.requests()
    (placed,) = (r for r in sent if r["request"]["url"] == f"{running.base_url}/api/orders")
    assert placed["request"]["method"] == "POST"
    assert placed["request"]["headers"]["Authorization"] == f"Token {key}"
    elsewhere = [
        r["request"]["url"]
        for r in sent
        if not r["request"]["url"].startswith((running.base_url + "/", "data:", "blob:"))
    ]
    assert elsewhere == []
