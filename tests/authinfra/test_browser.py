"""A real headless Chromium fills forms, and completes the test provider's OpenID Connect login.

What issue 7's console test will do, minus the console: a page from a small aiohttp app, then
a tiny relying party (relying_party.py) sending the browser through the provider's login form
and back with a code.
"""
from __future__ import annotations

import html

import pytest
from aiohttp import web
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.wait import WebDriverWait

from tests.support.background_http import BackgroundApp
from tests.support.browser import PNG_SIGNATURE, save_screenshot
from tests.support.oidc_provider import OidcProvider

from .relying_party import RelyingParty

pytestmark = pytest.mark.browser

FORM_PAGE = """<!DOCTYPE html><html><body>
<form method="post" action="/greet"><input name="name" id="name"><button id="send">Send</button></form>
</body></html>"""


def greeting_app() -> web.Application:
    async def form(request: web.Request) -> web.Response:
        return web.Response(text=FORM_PAGE, content_type="text/html")

    async def greet(request: web.Request) -> web.Response:
        name = (await request.post())["name"]
        return web.Response(text=f"<p id='greeting'>Hello, {html.escape(str(name))}!</p>", content_type="text/html")

    app = web.Application()
    app.router.add_get("/", form)
    app.router.add_post("/greet", greet)
    return app


def test_the_browser_fills_and_submits_a_form_and_reads_the_result(browser, tmp_path):
    hostile = "<script>alert(1)</script>"
    with BackgroundApp(greeting_app()) as app:
        browser.get(f"{app.base_url}/")
        browser.find_element(By.ID, "name").send_keys(hostile)
        browser.find_element(By.ID, "send").click()
        greeting = WebDriverWait(browser, 10).until(
            expected_conditions.presence_of_element_located((By.ID, "greeting")))

        assert greeting.text == f"Hello, {hostile}!"
        shot = save_screenshot(browser, tmp_path / "shots" / "greeting.png")
    assert shot.read_bytes().startswith(PNG_SIGNATURE)
    assert shot.stat().st_size > 1000


def log_in_through_the_browser(browser, relying_party: RelyingParty, provider: OidcProvider, user_id: str) -> str:
    """Start at the relying party, sign in on the provider's form, return the email shown."""
    user = provider.user(user_id)
    browser.get(f"{relying_party.base_url}/login")
    WebDriverWait(browser, 10).until(expected_conditions.presence_of_element_located((By.ID, "login-name")))
    assert browser.current_url.startswith(provider.issuer), "the relying party should send the browser to the provider"
    browser.find_element(By.ID, "login-name").send_keys(user.id)
    browser.find_element(By.ID, "password").send_keys(user.password)
    browser.find_element(By.ID, "sign-in").click()
    return WebDriverWait(browser, 10).until(expected_conditions.presence_of_element_located((By.ID, "who"))).text


@pytest.mark.parametrize("user_id", ["alice", "query-suffix"])
def test_the_browser_completes_the_providers_login_at_a_relying_party(browser, oidc_provider, user_id):
    with RelyingParty(oidc_provider) as relying_party:
        shown = log_in_through_the_browser(browser, relying_party, oidc_provider, user_id)

        assert browser.current_url.startswith(relying_party.redirect_uri)
        assert shown == oidc_provider.user(user_id).email
        assert [claims["sub"] for claims in relying_party.signed_in] == [user_id]
        assert relying_party.pending == {}, "the state of the login should be used up"
