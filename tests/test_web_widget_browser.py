"""The real widget in a real browser: Debian's headless Chromium, driven through its
chromedriver with Selenium, on a shop page of another origin that embeds the widget with
its one script tag. End to end: the visitor writes, the message is stored; the agent
answers through the API, the answer appears without a reload; a reload is the same
visitor with the history; with WebSockets broken, the REST fallback carries both ways."""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import AsyncIterator, Callable, Iterator
from functools import partial
from typing import Any

import pytest
import pytest_asyncio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from api.app import create_app
from tests.channel_helpers import reply
from tests.factories import Backend, TenantCtx, expect, make_tenant
from tests.live_server import live_server
from tests.widget_helpers import conversation_of, web_channel

pytestmark = [pytest.mark.slow, pytest.mark.parametrize("backend", ["sqlite"], indirect=True)]

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"

SHOP_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Shop</title></head>
<body><h1>A shop that embeds RelayDesk</h1>
{breaker}
<script src="{api}/widget.js" data-channel="{channel_id}" async></script>
</body></html>"""
# What a proxy that drops WebSocket upgrades looks like to the page: every socket fails
# to connect (nothing listens on the discard port).
BREAK_WEBSOCKETS = """<script>
  (function () {
    var Real = window.WebSocket;
    window.WebSocket = function () { return new Real("ws://127.0.0.1:9/"); };
  })();
</script>"""


@pytest.fixture(scope="module")
def driver() -> Iterator[Any]:
    """Debian's chromium and its matching chromedriver (`.ci/run` installs both)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    for binary in (CHROMIUM, CHROMEDRIVER):
        if shutil.which(binary) is None:
            pytest.fail(f"{binary} is missing: apt-get install -y chromium chromium-driver")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(flag)
    browser = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield browser
    finally:
        browser.quit()


class Page:
    """The shop page in the browser; every WebDriver call runs in a thread, so the test's
    event loop keeps serving the API meanwhile."""

    WIDGET = "document.getElementById('relaydesk-widget')"

    def __init__(self, driver: Any) -> None:
        self.driver = driver

    async def js(self, script: str, *args: Any) -> Any:
        return await asyncio.to_thread(self.driver.execute_script, script, *args)

    async def open(self, url: str) -> None:
        await asyncio.to_thread(self.driver.get, url)

    async def widget(self, attribute: str) -> Any:
        return await self.js(
            f"var w = {self.WIDGET}; return w && w.getAttribute(arguments[0]);", attribute
        )

    async def messages(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = await self.js(
            f"""return Array.from({self.WIDGET}.shadowRoot.querySelectorAll('.msg[data-id]'))
                .map(function (m) {{ return {{author: m.classList.contains('agent') ? 'agent'
                    : 'visitor', text: m.textContent, children: m.children.length,
                    pending: m.classList.contains('pending')}}; }});"""
        )
        return found

    async def click(self, selector: str) -> None:
        def click() -> None:
            host = self.driver.find_element("id", "relaydesk-widget")
            host.shadow_root.find_element("css selector", selector).click()

        await asyncio.to_thread(click)

    async def type_and_send(self, text: str) -> None:
        def type_() -> None:
            from selenium.webdriver.common.keys import Keys

            host = self.driver.find_element("id", "relaydesk-widget")
            box = host.shadow_root.find_element("css selector", "textarea")
            box.send_keys(text)
            box.send_keys(Keys.ENTER)

        await asyncio.to_thread(type_)


async def eventually(check: Callable[[], Any], wait_s: float = 10, what: str = "") -> Any:
    """The first truthy result of the async `check`, polled until `wait_s` passes."""
    deadline = time.monotonic() + wait_s
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {wait_s} s waiting for {what}")
        await asyncio.sleep(0.05)


@pytest_asyncio.fixture(loop_scope="session")
async def shop(backend: Backend) -> AsyncIterator[tuple[TenantCtx, str, str]]:
    """The API and the shop page, on two origins; the channel allows only the shop's."""
    tenant = await make_tenant(backend)
    async with live_server(create_app(runtime=backend.runtime)) as api:
        # The shop is served as `localhost`, the API as `127.0.0.1`: two origins.
        holder: dict[str, str] = {}
        app = Starlette(routes=[Route("/", partial(_page, holder=holder))])
        async with live_server(app) as shop_url:
            shop_origin = shop_url.replace("127.0.0.1", "localhost")
            channel_id = await web_channel(tenant, allowed_origins=[shop_origin])
            holder.update(api=api, channel_id=channel_id)
            yield tenant, channel_id, shop_origin


async def _page(request: Request, holder: dict[str, str]) -> HTMLResponse:
    breaker = BREAK_WEBSOCKETS if request.query_params.get("no_websockets") else ""
    return HTMLResponse(SHOP_PAGE.format(breaker=breaker, **holder))


async def test_visitor_chats_live_reloads_and_falls_back_to_rest(
    shop: tuple[TenantCtx, str, str], driver: Any
) -> None:
    tenant, channel_id, shop_url = shop
    page = Page(driver)
    await page.open(shop_url + "/")
    visitor_id = await eventually(lambda: page.widget("data-visitor"), what="a visitor session")

    # The visitor opens the chat and writes; the socket carries it into the inbox.
    await page.click(".launcher")
    await eventually(lambda: _is(page.widget("data-transport"), "websocket"), what="the WebSocket")
    await page.type_and_send("Hi! <img src=x onerror=alert(1)> Where is order 5512?")
    stored = await eventually(lambda: _stored_texts(tenant, channel_id), what="the stored message")
    assert stored == ["Hi! <img src=x onerror=alert(1)> Where is order 5512?"]
    conversation = await conversation_of(tenant, channel_id)
    assert conversation["messages"][0]["provider_message_id"].startswith(visitor_id + ":")

    # The agent answers through the API: the answer appears in the page, no reload.
    started = time.monotonic()
    sent = expect(
        await reply(tenant, conversation["id"], {"text": "<b>Shipped</b> today, arriving Friday"}),
        201,
    )
    await eventually(
        lambda: _has_text(page, "agent", "<b>Shipped</b> today, arriving Friday"),
        wait_s=2,
        what="the pushed reply",
    )
    pushed_in = time.monotonic() - started
    messages = await page.messages()
    assert all(m["children"] == 0 for m in messages), "text must never become markup"
    assert not any(m["pending"] for m in messages)
    # Open and visible: the widget says the visitor read it.
    await eventually(
        lambda: _status_is(tenant, channel_id, sent["id"], "read"), what="the read receipt"
    )

    # A reload is the same visitor, with the history, still live.
    await page.open(shop_url + "/")
    await eventually(lambda: _is(page.widget("data-visitor"), visitor_id), what="the same visitor")
    await eventually(
        lambda: _has_text(page, "agent", "<b>Shipped</b> today, arriving Friday"),
        what="the restored history",
    )
    assert [m["text"] for m in await page.messages()] == [
        "Hi! <img src=x onerror=alert(1)> Where is order 5512?",
        "<b>Shipped</b> today, arriving Friday",
    ]
    await eventually(
        lambda: _is(page.widget("data-transport"), "websocket"), what="the WebSocket again"
    )

    # WebSockets broken (a proxy dropping upgrades): the widget falls back to REST.
    await page.open(shop_url + "/?no_websockets=1")
    await eventually(lambda: _is(page.widget("data-transport"), "rest"), what="the REST fallback")
    assert await page.widget("data-visitor") == visitor_id
    await page.click(".launcher")
    await page.type_and_send("Sent while WebSockets are blocked")
    await eventually(
        lambda: _has_stored(tenant, channel_id, "Sent while WebSockets are blocked"),
        what="the message sent over REST",
    )
    expect(await reply(tenant, conversation["id"], {"text": "Received over REST too"}), 201)
    await eventually(
        lambda: _has_text(page, "agent", "Received over REST too"),
        wait_s=8,
        what="the polled reply",
    )
    assert pushed_in < 2, pushed_in


async def _is(value: Any, expected: str) -> bool:
    return bool(await value == expected)


async def _stored_texts(t: TenantCtx, channel_id: str) -> list[str]:
    page = await t.client.get(f"/v1/conversations?channel_id={channel_id}", headers=t.agent.headers)
    items = page.json()["items"]
    if not items:
        return []
    conversation = await conversation_of(t, channel_id)
    return [m["text"] for m in conversation["messages"] if m["direction"] == "inbound"]


async def _has_stored(t: TenantCtx, channel_id: str, text: str) -> bool:
    return text in await _stored_texts(t, channel_id)


async def _has_text(page: Page, author: str, text: str) -> bool:
    return any(m["author"] == author and m["text"] == text for m in await page.messages())


async def _status_is(t: TenantCtx, channel_id: str, message_id: str, status: str) -> bool:
    conversation = await conversation_of(t, channel_id)
    found = [m for m in conversation["messages"] if m["id"] == message_id]
    return bool(found) and found[0]["delivery_status"] == status
