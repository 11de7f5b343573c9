"""The cluster overview page (pgha:monitoring) in a real browser: Debian's headless Chromium,
driven by Selenium, opens the URL `make dashboard` prints, on the patroni suite's stack.

It checks what a person looks for first: every node with its role (exactly one primary)
and a replay-lag graph that has data, and saves a screenshot (PGHA_ARTIFACTS, default
bench/results/) for CI to keep.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

from infra import outputs as out
from pgha_testkit import patroni
from pgha_testkit.alerts import overview_url
from pgha_testkit.deployment import Deployment
from pgha_testkit.env import ROOT
from pgha_testkit.poll import NotYet, wait_until

ARTIFACTS = Path(os.environ.get("PGHA_ARTIFACTS", ROOT / "bench" / "results"))


@pytest.fixture
def browser() -> Iterator[webdriver.Chrome]:
    driver_path = shutil.which("chromedriver")
    assert driver_path, "chromedriver is missing: apt-get install chromium chromium-driver"
    options = Options()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1100,1900"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def test_the_overview_shows_every_node_role_and_a_lag_series(
    deployment: Deployment, browser: webdriver.Chrome
) -> None:
    patroni.wait_whole(deployment)
    url = overview_url(str(deployment.outputs[out.PROMETHEUS_URL]))

    def roles() -> dict[str, str]:
        browser.get(url)
        rows = browser.find_elements(By.CSS_SELECTOR, "#nodes tr.node")
        found = {
            r.get_attribute("data-node") or "": r.find_element(By.CSS_SELECTOR, ".role").text
            for r in rows
        }
        if set(found) != set(patroni.pg_nodes(deployment)):
            raise NotYet(f"nodes on the page: {found}")
        return found

    wait_until(lambda: bool(roles()), 60, "every node on the overview")
    shown = roles()
    assert sorted(shown.values()) == ["primary"] + ["replica"] * (len(shown) - 1), shown

    def lag_plotted() -> bool:
        # Rickshaw draws one SVG path per series once /api/v1/query_range answered.
        paths = browser.find_elements(By.CSS_SELECTOR, "#lagGraph svg path")
        drawn = [p for p in paths if len(p.get_attribute("d") or "") > 10]
        if not drawn:
            raise NotYet(f"{len(paths)} paths in the lag graph")
        return True

    wait_until(lag_plotted, 30, "a lag series drawn")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    assert browser.save_screenshot(str(ARTIFACTS / "overview.png"))
