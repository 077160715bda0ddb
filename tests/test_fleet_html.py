"""The fleet report page, opened in a real headless Chromium (Debian's chromium and
chromium-driver, driven by selenium).

Why selenium with Debian's chromedriver: the driver comes from the same Debian source package
as the browser, so their versions always match, and the selenium client is a small pure-Python
wheel; playwright would bring its own Node.js runtime (a large wheel) and is built against its
own Chromium builds, not Debian's. Selenium's own driver manager is never asked: the driver is
named, so nothing is downloaded.

The test is skipped only where no browser is installed; CI sets ENVSETUP_TEST_REQUIRE_BROWSER=1
(.ci/run installs both packages), which turns that skip into a failure.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import run_cli
from fleet_machines import distinct_machines, node_profile, write_fleet

BROWSER = shutil.which("chromium") or "/usr/bin/chromium"
DRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


def _browser_missing() -> str:
    missing = [p for p in (BROWSER, DRIVER) if not os.path.exists(p)]
    if missing:
        return f"no {', '.join(missing)} (apt-get install chromium chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[test]')"
    return ""


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    why = _browser_missing()
    if why:
        if os.environ.get("ENVSETUP_TEST_REQUIRE_BROWSER") == "1":
            pytest.fail(f"ENVSETUP_TEST_REQUIRE_BROWSER=1 but {why}")
        pytest.skip(why)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="envsetup-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = BROWSER
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run", f"--user-data-dir={profile}"):  # fmt: skip
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=DRIVER), options=opts)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    d = tmp_path_factory.mktemp("fleet")
    machines = distinct_machines(37)
    write_fleet(d, machines, 120)
    # a node name that would be markup, and a broken file
    (d / "<img src=x onerror=alert(1)>.json").write_text(json.dumps(node_profile(machines[0], 9)))
    (d / "broken.json").write_text("{")
    html = d / "report.html"
    res = run_cli("fleet", "report", str(d), "--json", "--html", str(html))
    assert res.returncode == 2, res  # the broken file
    return html, res.json()


def test_page_is_self_contained(page: tuple[Path, dict[str, Any]]) -> None:
    from html.parser import HTMLParser

    html, _ = page
    refs: list[tuple[str, str]] = []

    class Refs(HTMLParser):
        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            for k, v in attrs:
                if k in ("src", "href", "srcset", "action", "poster", "data") and v:
                    refs.append((tag, v))
            if tag in ("script", "link", "iframe", "object", "embed"):
                refs.append((tag, ""))

    Refs().feed(html.read_text(encoding="utf-8"))
    assert refs == []


def test_page_in_headless_chromium(browser: Any, page: tuple[Path, dict[str, Any]]) -> None:
    from selenium.webdriver.common.by import By

    html, doc = page
    browser.get(html.as_uri())
    errors = [e for e in browser.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
    assert errors == []
    # the groups table: one row per group, in the report's order, with its node count
    rows = browser.find_elements(By.CSS_SELECTOR, "table#groups tbody tr")
    assert len(rows) == len(doc["groups"]) == 37
    first = rows[0].find_elements(By.TAG_NAME, "td")
    assert first[0].text == doc["groups"][0]["id"]
    assert first[1].text.split()[0] == str(doc["groups"][0]["count"])
    # the charts: one bar per driver and per torch build, their counts adding up to the nodes
    for chart, dim in (("chart-drivers", "driver"), ("chart-torch", "torch")):
        bars = browser.find_elements(By.CSS_SELECTOR, f"#{chart} rect.bar")
        values = {g["machine"][dim] for g in doc["groups"]}
        assert len(bars) == len(values)
        labels = browser.find_elements(By.CSS_SELECTOR, f"#{chart} g title")
        total = sum(int(t.get_attribute("textContent").rsplit(": ", 1)[1].split()[0])
                    for t in labels)  # fmt: skip
        assert total == doc["nodes"]
        assert all(float(b.get_attribute("width")) > 0 for b in bars)
    # the markup-like node name is text, not an element; the broken file is listed
    assert browser.find_elements(By.CSS_SELECTOR, "img") == []
    assert "broken" in browser.find_element(By.ID, "unreadable").text
    # nothing was fetched from anywhere
    fetched = browser.execute_script("return performance.getEntriesByType('resource').length")
    assert fetched == 0
