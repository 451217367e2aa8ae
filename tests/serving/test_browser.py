"""The page in a real browser: headless Chromium (Debian's chromium + chromium-driver, via selenium)
against `ranklist serve` run by uvicorn on 127.0.0.1. Uploads an image, waits for the neighbours in
the DOM, opens an item's neighbours and the browse view, and saves a screenshot as a test artefact."""

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from tests.serving.fixtures import draw

pytestmark = pytest.mark.heavy  # a server subprocess driven by a real browser

CHROMIUM, DRIVER = (
    shutil.which("chromium") or "/usr/bin/chromium",
    shutil.which("chromedriver") or "/usr/bin/chromedriver",
)
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1280,1000",
]


def require_browser():
    """Chromium and its driver, or a skip here and a failure in CI (`make test` installs them)."""
    pytest.importorskip("selenium")
    missing = [p for p in (CHROMIUM, DRIVER) if not os.path.exists(p)]
    if missing:
        reason = (
            f"{' and '.join(missing)} not installed "
            "(apt-get install chromium chromium-driver; `make test` does it as root)"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def serving(index, checkpoint, log_path):
    """`ranklist serve` in a subprocess on a free loopback port, stopped (and reaped) afterwards."""
    port = free_port()
    log = open(log_path, "wb")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ranklist",
            "serve",
            "--index",
            str(index),
            "--checkpoint",
            str(checkpoint),
            "--port",
            str(port),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(url + "/healthz", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the server did not start: {log_path.read_text()[-2000:]}")
            time.sleep(0.3)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


@pytest.fixture
def server(served, tmp_path):
    with serving(served["index"], served["checkpoint"], tmp_path / "server.log") as url:
        yield url


@pytest.fixture
def browser(tmp_path):
    require_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in [*FLAGS, f"--user-data-dir={tmp_path / 'chromium-profile'}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=DRIVER))
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def test_upload_an_image_and_see_its_neighbours(server, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ready
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, 60)
    browser.get(server + "/")
    wait.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "1")
    assert len(browser.find_elements(By.CSS_SELECTOR, "#items .hit")) == 24
    query = tmp_path / "query.png"
    draw(3, 11, 90).save(query)
    k = browser.find_element(By.ID, "k")
    k.clear()
    k.send_keys("5")
    browser.find_element(By.ID, "file-input").send_keys(str(query))
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#results .hit")) == 5)
    hits = browser.find_elements(By.CSS_SELECTOR, "#results .hit")
    scores = [float(hit.find_element(By.CLASS_NAME, "score").text) for hit in hits]
    assert scores == sorted(scores, reverse=True) and all(-1 <= s <= 1 for s in scores)
    wait.until(
        lambda d: all(
            img.get_attribute("naturalWidth") not in (None, "0")
            for img in d.find_elements(By.CSS_SELECTOR, "#results img, #preview")
        )
    )
    assert browser.find_element(By.ID, "error").text == ""
    artefact = tmp_path / "page.png"
    browser.save_screenshot(str(artefact))
    assert artefact.stat().st_size > 10_000
    if os.environ.get("RANKLIST_SCREENSHOT"):  # docs/serve/page.png is made this way
        shutil.copy(artefact, os.environ["RANKLIST_SCREENSHOT"])

    hits[0].click()  # an indexed item's own neighbours: framed green / red by class
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#query .card.query"))
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#results .hit.correct, #results .hit.wrong")) == 5)
    browser.find_element(By.ID, "tab-browse").click()
    wait.until(ready.visibility_of_element_located((By.CSS_SELECTOR, ".browse-row")))
    rows = browser.find_elements(By.CSS_SELECTOR, ".browse-row")
    assert len(rows) == 24
    correct = [len(row.find_elements(By.CSS_SELECTOR, ".hit.correct")) for row in rows]
    assert correct == sorted(correct)  # worst queries first
    browser.save_screenshot(str(tmp_path / "browse.png"))


HOSTILE = "<img src=x onerror=\"document.body.dataset.pwned='1'\">"


def test_class_names_from_the_data_reach_the_page_as_text(served, browser, tmp_path):
    """A class folder named like markup: shown literally, never run (the page builds text nodes, and its
    Content-Security-Policy would block an injected handler besides)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from ranklist.cli import main
    from tests.serving.fixtures import make_folder

    root = make_folder(tmp_path / "images", classes=6, per_class=3)
    for c in range(6):
        (root / f"class_{c}").rename(root / f"{c} {HOSTILE}")
    assert (
        main(
            [
                "index",
                "--checkpoint",
                str(served["checkpoint"]),
                "--dataset",
                "folder",
                "--root",
                str(root),
                "--out",
                str(tmp_path / "idx"),
                "--no-progress",
            ]
        )
        == 0
    )
    with serving(tmp_path / "idx", served["checkpoint"], tmp_path / "server.log") as url:
        wait = WebDriverWait(browser, 60)
        browser.get(url + "/")
        wait.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "1")
        captions = [c.text for c in browser.find_elements(By.CSS_SELECTOR, "#items .caption")]
        browser.find_element(By.ID, "tab-browse").click()
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, ".browse-row"))
        browser.save_screenshot(str(tmp_path / "hostile.png"))  # an artefact to look at
        assert any(caption.endswith(" " + HOSTILE) for caption in captions), captions
        assert browser.find_element(By.TAG_NAME, "body").get_attribute("data-pwned") is None
        assert not browser.find_elements(By.CSS_SELECTOR, ".caption img")
