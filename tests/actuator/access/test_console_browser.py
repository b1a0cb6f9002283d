"""The operator console in a REAL headless Chromium: log in at the real OpenID provider, see the
real worker, press "grow", and the worker's own stats (``inspect().stats()``) show the bigger
pool, while the page follows live (server-sent events) without a reload. A queue named
``<script>alert(1)</script>`` shows as text and runs nothing.

Set AUTOPILOT_CONSOLE_SCREENSHOT=docs/console.png to refresh the README's screenshot from this run.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from selenium.common.exceptions import NoAlertPresentException, NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.wait import WebDriverWait

from tests.actuator.access.test_oidc_login import oidc_flags
from tests.actuator.conftest import write_rules
from tests.support.actuator_process import ActuatorProcess
from tests.support.browser import save_screenshot
from tests.support.inspection import pool_size
from tests.support.polling import wait_for
from tests.support.ports import free_port

pytestmark = pytest.mark.browser

WORKER = "console@autopilot-demo"
HOSTILE = "<script>alert(1)</script>"
RULES = """
    manual: {max_pool: 6, max_actions_per_hour: 30}
    limits: {max_actions_per_hour: 60}
    rules:
      - name: grow-on-backlog
        match: {alertname: CeleryQueueBacklog}
        cooldown: 5m
        max_actions_per_hour: 12
        actions: [{command: pool_grow, workers: {consuming: "{{ labels.queue_name }}"}, n: 1, max_pool: 6}]
"""


@pytest.fixture(scope="module")
def worker(start_workers):
    return start_workers({"name": WORKER, "queues": ["celery", HOSTILE], "concurrency": 2})[0]


@pytest.fixture(scope="module")
def actuator(oidc_provider, module_broker_url, tmp_path_factory, worker):
    directory = tmp_path_factory.mktemp("console")
    port = free_port()
    client = oidc_provider.register_client([f"http://127.0.0.1:{port}/login/oidc/callback"], client_name="console")
    secret = directory / "oidc-secret"
    secret.write_text(client.client_secret)
    process = ActuatorProcess(write_rules(directory, RULES), module_broker_url,
                              *oidc_flags(oidc_provider, client, secret), "--console-interval", "0.5",
                              "--workers-max-age", "0.5", "--discovery-interval", "1", port=port)
    process.start()
    yield process
    process.stop()


def sign_in(browser, provider, actuator, user_id: str) -> None:
    user = provider.user(user_id)
    browser.get(f"{actuator.url}/")
    WebDriverWait(browser, 10).until(expected_conditions.element_to_be_clickable((By.ID, "login-oidc"))).click()
    WebDriverWait(browser, 10).until(expected_conditions.presence_of_element_located((By.ID, "login-name")))
    browser.find_element(By.ID, "login-name").send_keys(user.id)
    browser.find_element(By.ID, "password").send_keys(user.password)
    browser.find_element(By.ID, "sign-in").click()
    WebDriverWait(browser, 10).until(expected_conditions.presence_of_element_located((By.ID, "workers")))


# The live panels replace their rows as updates arrive: an element found a moment ago may be gone.
LIVE_REDRAW = (NoSuchElementException, StaleElementReferenceException)


def shown_pool(browser) -> str:
    return browser.find_element(By.CSS_SELECTOR, f'tr.worker[data-worker="{WORKER}"] td.pool-size').text.split()[0]


def test_log_in_see_the_worker_grow_it_and_the_worker_agrees(browser, oidc_provider, actuator, inspector, tmp_path):
    before = pool_size(inspector, WORKER)
    sign_in(browser, oidc_provider, actuator, "alice")
    assert browser.current_url == f"{actuator.url}/"
    assert "oidc:alice@company.com" in browser.find_element(By.CLASS_NAME, "who").text
    WebDriverWait(browser, 10).until(lambda b: b.execute_script("return document.body.dataset.live") == "1")
    WebDriverWait(browser, 10, ignored_exceptions=LIVE_REDRAW).until(lambda b: shown_pool(b) == str(before))

    browser.find_element(By.CSS_SELECTOR, f'button[data-action="grow"][data-worker="{WORKER}"]').click()
    flash = WebDriverWait(browser, 10).until(expected_conditions.presence_of_element_located((By.ID, "flash")))
    assert flash.text.startswith("sent: pool_grow n=1 on " + WORKER), flash.text
    wait_for(lambda: pool_size(inspector, WORKER) == before + 1, timeout=15, what="the worker's pool to grow by 1")
    # The page follows by itself: no reload after the redirect that showed the flash.
    WebDriverWait(browser, 15, ignored_exceptions=LIVE_REDRAW).until(lambda b: shown_pool(b) == str(before + 1))
    assert browser.find_element(By.ID, "flash").text == flash.text, "the page was not reloaded"

    decision = WebDriverWait(browser, 10, ignored_exceptions=LIVE_REDRAW).until(
        lambda b: b.find_element(By.CSS_SELECTOR, "#actions tr:nth-child(2)").text)
    assert "console" in decision and "oidc:alice@company.com" in decision and "sent" in decision

    shot = save_screenshot(browser, tmp_path / "console.png")
    target = os.environ.get("AUTOPILOT_CONSOLE_SCREENSHOT")
    if target:
        shutil.copyfile(shot, Path(target))


def test_a_hostile_queue_name_is_text_and_runs_nothing(browser, oidc_provider, actuator):
    sign_in(browser, oidc_provider, actuator, "bob")
    WebDriverWait(browser, 10).until(lambda b: b.execute_script("return document.body.dataset.live") == "1")
    names = WebDriverWait(browser, 10, ignored_exceptions=LIVE_REDRAW).until(
        lambda b: [cell.text for cell in b.find_elements(By.CSS_SELECTOR, "#queues td.queue-name")])
    assert HOSTILE in names, names
    worker_queues = WebDriverWait(browser, 10, ignored_exceptions=LIVE_REDRAW).until(
        lambda b: b.find_element(By.CSS_SELECTOR, f'tr.worker[data-worker="{WORKER}"]').text)
    assert HOSTILE in worker_queues
    with pytest.raises(NoAlertPresentException):
        browser.switch_to.alert.text  # noqa: B018 - raises when no script opened an alert
    assert browser.find_elements(By.CSS_SELECTOR, "#queues script") == []
    assert browser.find_elements(By.CSS_SELECTOR, 'button[data-action="grow"]') == [], "a viewer gets no forms"
