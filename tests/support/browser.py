"""A headless Chromium driven by Selenium, for tests of what people see: issue 7's console.

Debian's ``chromium`` and its matching ``chromium-driver`` (installed by scripts/setup.sh) are
used as they are: the driver path is given, so Selenium Manager never downloads a browser or a
driver. Each browser gets a fresh profile directory, removed when it quits, so cookies and
sessions never leak from one test to the next. The flags keep Chromium from talking to Google
(sync, component updates, background networking) and from needing a sandbox or GPU the test
machine may lack.

Used by tests/authinfra/ (which prove it) and by the console tests of issue 7.
"""
from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@contextmanager
def headless_chromium(*, window_size: tuple[int, int] = (1280, 900), page_load_timeout: float = 20.0,
                      ) -> Iterator[webdriver.Chrome]:
    """A Chromium that quits (and loses its profile) when the ``with`` block ends."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if shutil.which(path) is None:
            raise RuntimeError(f"{path} is not installed; run ./run.sh setup")
    profile = Path(tempfile.mkdtemp(prefix="autopilot-chromium-"))
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--window-size={window_size[0]},{window_size[1]}"):
        options.add_argument(flag)
    service = Service(CHROMEDRIVER)
    try:
        driver = webdriver.Chrome(options=options, service=service)
    except BaseException:
        shutil.rmtree(profile, ignore_errors=True)
        raise
    try:
        driver.set_page_load_timeout(page_load_timeout)
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def save_screenshot(driver: webdriver.Chrome, path: Path) -> Path:
    """Save the visible page as a PNG at ``path`` (parents created), checking a PNG was written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not driver.save_screenshot(str(path)):
        raise RuntimeError(f"Chromium could not save a screenshot to {path}")
    with path.open("rb") as image:
        if image.read(len(PNG_SIGNATURE)) != PNG_SIGNATURE:
            raise RuntimeError(f"{path} is not a PNG image")
    return path
