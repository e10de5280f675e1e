"""rnnlab explore in a real browser: headless Chromium driven by Playwright.

Loads every panel, watches a generation stream in and stops one, colours a surprisal
view (both colourings), picks a hidden unit, draws the training curves, and fails on
any console error. Needs a ``chromium`` binary (Debian's package; ``.ci/run`` installs
it) and the ``playwright`` Python package (the ``test`` extra); Playwright's own browser
download is not used.

``RNNLAB_EXPLORE_SCREENSHOTS=DIR`` also saves the README's screenshots there, of the
model in ``RNNLAB_EXPLORE_MODEL`` (with ``RNNLAB_EXPLORE_NGRAM``) when set, else of the
tiny model trained here.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import threading
import time
from pathlib import Path

import pytest

from rnnlab.explore import Explorer, Limits, make_server


def chromium_path() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


CHROMIUM = chromium_path()
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium binary on PATH (apt-get install chromium; "
                                                         ".ci/run installs it)")

TEXT = ('He said "the quick brown fox (a red one) jumps over the lazy dog" and left.\n' * 40)


@pytest.fixture(scope="module")
def model_folders(tmp_path_factory):
    if os.environ.get("RNNLAB_EXPLORE_MODEL"):
        return Path(os.environ["RNNLAB_EXPLORE_MODEL"]), os.environ.get("RNNLAB_EXPLORE_NGRAM"), None
    from rnnlab.cli import main

    root = tmp_path_factory.mktemp("explore-browser")
    (root / "fox.txt").write_text(TEXT)
    cwd = os.getcwd()
    os.chdir(root)
    try:
        with contextlib.redirect_stdout(open(os.devnull, "w")):
            assert main(["-q", "train", "--corpus", "fox.txt", "--model", "gru", "--hidden", "12", "--layers", "1",
                         "--embed", "6", "--batch-size", "4", "--num-steps", "16", "--sample-length", "0",
                         "--max-steps", "6", "--eval-every-steps", "2", "--device", "cpu", "--precision", "fp32",
                         "--out", "lm"]) == 0
            assert main(["-q", "ngram", "train", "--corpus", "fox.txt", "--token", "char", "--mode", "raw",
                         "--order", "3", "--out", "ng"]) == 0
    finally:
        os.chdir(cwd)
    return root / "lm", root / "ng", root


@pytest.fixture(scope="module")
def url(model_folders):
    folder, ngram, data_dir = model_folders
    explorer = Explorer(folder, ngram_folder=ngram, data_dir=data_dir, limits=Limits())
    plain = explorer.generate

    def paced(options):
        # A few milliseconds per event, so that the page is seen between the first token and the last.
        for event in plain(options):
            if event["type"] == "token":
                time.sleep(0.003)
            yield event

    explorer.generate = paced
    server = make_server(explorer, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server.url
    explorer.stopping.set()
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium (Debian's binary, driven by Playwright), one per test module."""
    try:
        from playwright import sync_api as playwright_api
    except ImportError:  # a missing test dependency is a failure, not a reason to skip
        pytest.fail("the playwright package is missing: pip install -e '.[test]' (bash bootstrap.sh setup)")
    with playwright_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        chromium.close()


def open_page(browser, url: str, width: int = 1100, height: int = 720):
    """A new tab on ``url``, once the page has its model; ``tab.problems`` collects console
    errors and page errors (every test ends by asserting there are none)."""
    context = browser.new_context(viewport={"width": width, "height": height}, device_scale_factor=1)
    tab = context.new_page()
    tab.problems = []
    tab.on("console", lambda m: tab.problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    tab.on("pageerror", lambda e: tab.problems.append(f"page error: {e}"))
    tab.set_default_timeout(15_000)
    tab.goto(url)
    tab.wait_for_function("() => document.getElementById('model-info').textContent.includes('parameters')")
    return tab


@pytest.fixture(scope="module")
def page(browser, url):
    return open_page(browser, url)


def screenshot(tab, name: str) -> None:
    folder = os.environ.get("RNNLAB_EXPLORE_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        tab.screenshot(path=str(Path(folder) / f"explore_{name}.png"))


def test_generation_streams_and_stops(page):
    page.fill("#gen-prefix", "He said ")
    page.fill("#gen-length", "400")
    page.fill("#gen-seed", "1")
    page.click("#gen-start")
    # Seen mid-stream: some tokens shown while the Stop button is still live.
    page.wait_for_function("() => document.querySelectorAll('#gen-output .tok').length > 10 && "
                           "!document.getElementById('gen-stop').disabled")
    partial = page.locator("#gen-output .tok").count()
    page.wait_for_function("() => document.getElementById('gen-stop').disabled", timeout=30_000)
    assert page.locator("#gen-output .tok").count() == 400 > partial
    assert "stopped by length" in page.inner_text("#gen-status")
    assert page.inner_text("#gen-output").startswith("He said ")
    title = page.locator("#gen-output .tok").nth(3).get_attribute("title")
    assert title.startswith("p = ") and 0 < float(title[4:]) <= 1
    page.locator("#gen-output .tok").nth(3).hover()
    screenshot(page, "generate")

    page.fill("#gen-length", "2000")
    page.click("#gen-start")
    page.wait_for_function("() => document.querySelectorAll('#gen-output .tok').length > 5")
    page.click("#gen-stop")
    page.wait_for_function("() => document.getElementById('gen-status').textContent.startsWith('stopped after')")
    assert page.locator("#gen-output .tok").count() < 2000
    assert not page.problems, page.problems


def test_surprisal_colours_every_token(page):
    page.click("#tabs button[data-panel=surprisal]")
    page.click("#sur-score")
    page.wait_for_function("() => document.querySelectorAll('#sur-output .tok').length > 50")
    summary = page.inner_text("#sur-summary")
    assert "bits/char" in summary and "perplexity" in summary
    colours = page.eval_on_selector_all("#sur-output .tok", "els => els.slice(1).map(e => e.style.background)")
    assert all(colours) and len(set(colours)) > 5
    assert "bits" in page.locator("#sur-output .tok").nth(5).get_attribute("title")
    ngram = page.evaluate("async () => (await (await fetch('/api/info')).json()).ngram")
    assert page.is_visible("#sur-colour") == bool(ngram)  # the hidden attribute holds against the CSS
    if ngram:  # an n-gram model was given: the second colouring
        assert "-gram" in summary
        page.select_option("#sur-colour", "gain")
        gains = page.eval_on_selector_all("#sur-output .tok", "els => els.slice(1).map(e => e.style.background)")
        assert gains != colours and "n-gram" in page.inner_text("#sur-legend")
        page.select_option("#sur-colour", "bits")
    screenshot(page, "surprisal")
    page.click("#sur-validation")
    page.wait_for_function("() => document.getElementById('sur-summary').textContent.startsWith('validation')")
    assert not page.problems, page.problems


def test_hidden_unit_can_be_picked(page):
    page.click("#tabs button[data-panel=units]")
    page.click("#units-run")
    page.wait_for_function("() => document.getElementById('units-list').options.length > 3 && "
                           "document.querySelectorAll('#units-output .tok').length > 20")
    options = page.eval_on_selector_all("#units-list option", "els => els.map(e => e.value)")
    page.select_option("#units-list", options[2])
    page.wait_for_function(f"() => document.getElementById('units-list').value === '{options[2]}' && "
                           "document.getElementById('units-summary').textContent.startsWith('layer')")
    assert "layer" in page.inner_text("#units-summary")
    assert page.locator("#units-corr td").count() >= 12  # feature names and their r
    page.select_option("#units-feature", "inside quotes")
    page.wait_for_function("() => [...document.querySelectorAll('#units-list option')].every(o => "
                           "o.textContent.includes('inside quotes') || o.textContent.includes('–'))")
    screenshot(page, "units")
    assert not page.problems, page.problems


def test_training_curves(page):
    page.click("#tabs button[data-panel=training]")
    page.wait_for_function("() => document.querySelectorAll('#chart-metric-0 polyline').length === 2")
    assert page.locator("#chart-lr polyline").count() == 1
    assert "evaluations" in page.inner_text("#train-status")
    assert page.locator("#train-config tr").count() > 10
    page.select_option("#train-x", "seconds")
    page.wait_for_function("() => document.querySelectorAll('#chart-metric-0 polyline').length === 2")
    screenshot(page, "training")
    assert not page.problems, page.problems
