"""rnnlab explore's classifier and tagger panels in a real browser (headless Chromium, Playwright).

Types a text into each panel and checks what the page shows against the API's answer:
the label bars (sorted, the predicted label marked, widths the probabilities), the tags
under each token, the entity spans highlighted in their type's legend colour; that only
the folder's own tab and Training are offered; and the Training panel's curves of the
task's metric and losses. Fails on any console error. Needs what
tests/test_explore_browser.py needs (``chromium``, ``playwright``).

``RNNLAB_EXPLORE_SCREENSHOTS=DIR`` also saves the how-to's screenshots there, of the folders
in ``RNNLAB_EXPLORE_CLASSIFIER`` and ``RNNLAB_EXPLORE_TAGGER`` when set, else of the tiny
models trained here.
"""
from __future__ import annotations

import json
import os
import threading

import pytest

from rnnlab.explore import make_server, open_explorer
from test_explore_browser import CHROMIUM, browser, open_page, screenshot  # noqa: F401 (browser: a fixture)
from test_explore_panels import train_task_folders

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium binary on PATH (apt-get install chromium; "
                                                         ".ci/run installs it)")


@pytest.fixture(scope="module")
def urls(tmp_path_factory):
    given = os.environ.get("RNNLAB_EXPLORE_CLASSIFIER"), os.environ.get("RNNLAB_EXPLORE_TAGGER")
    folders = given if all(given) else train_task_folders(tmp_path_factory.mktemp("explore-panels-browser"))
    servers = [make_server(open_explorer(folder), "127.0.0.1", 0) for folder in folders]
    for server in servers:
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield {"classifier": servers[0].url, "tagger": servers[1].url}
    for server in servers:
        server.shutdown()
        server.server_close()


def api(tab, route: str, text: str) -> dict:
    """What the page's own server answers for ``text`` (fetched from inside the page)."""
    return tab.evaluate("async ([route, text]) => (await fetch(route, {method: 'POST', headers: "
                        "{'Content-Type': 'application/json'}, body: JSON.stringify({text})})).json()", [route, text])


def visible_tabs(tab) -> list[str]:
    return tab.eval_on_selector_all("#tabs button", "els => els.filter(e => !e.hidden).map(e => e.dataset.panel)")


def test_classifier_panel_shows_sorted_bars_and_marks_the_prediction(browser, urls):
    tab = open_page(browser, urls["classifier"], 900, 520)
    assert visible_tabs(tab) == ["training", "classify"] and tab.is_visible("#panel-classify")
    assert not tab.is_visible("#panel-generate") and "classifier" in tab.inner_text("#model-info")
    text = "dreadful the cat sleeps under the tree every day and night near the river zebra"
    tab.fill("#cls-text", text)  # typing alone updates the bars
    tab.wait_for_function("() => document.querySelectorAll('#cls-bars tr').length > 1 && "
                          "!document.getElementById('cls-summary').textContent.endsWith('…')")
    expected = api(tab, "/api/classify", text)
    rows = tab.eval_on_selector_all("#cls-bars tr", "rows => rows.map(r => ({label: r.cells[0].textContent, "
                                    "p: r.cells[2].textContent, width: r.querySelector('.fill').style.width, "
                                    "predicted: r.classList.contains('predicted')}))")
    assert [row["label"].removeprefix("▶ ") for row in rows] == [e["label"] for e in expected["probabilities"]]
    assert [row["predicted"] for row in rows] == [e["label"] == expected["label"] for e in expected["probabilities"]]
    assert rows[0]["predicted"] and rows[0]["label"] == f"▶ {expected['label']}"
    for row, entry in zip(rows, expected["probabilities"]):
        assert float(row["width"].rstrip("%")) == pytest.approx(100 * entry["p"], abs=0.01)
        assert row["p"] == f"{100 * entry['p']:.1f}%"
    assert f"predicted: {expected['label']}" in tab.inner_text("#cls-summary")
    assert tab.eval_on_selector_all("#cls-tokens .unknown", "els => els.map(e => e.textContent)") == ["zebra"]
    screenshot(tab, "classify")
    tab.fill("#cls-text", "x" * 20_001)  # the page's maxlength keeps it to the server's limit
    assert len(tab.input_value("#cls-text")) == 20_000
    assert not tab.problems, tab.problems


def test_tagger_panel_shows_tags_and_highlights_entities(browser, urls):
    tab = open_page(browser, urls["tagger"], 900, 520)
    assert visible_tabs(tab) == ["training", "tag"] and tab.is_visible("#panel-tag")
    legend = tab.eval_on_selector_all("#tag-legend span:not(.swatch)", "els => els.map(e => e.textContent)")
    swatches = tab.eval_on_selector_all("#tag-legend .swatch", "els => els.map(e => e.style.background)")
    info = json.loads(tab.evaluate("async () => JSON.stringify(await (await fetch('/api/info')).json())"))
    assert legend == info["entity_types"] and len(set(swatches)) == len(swatches) > 0
    colour_of = dict(zip(legend, swatches))
    sentence = "ben kim joined apple in new york last year"
    tab.fill("#tag-text", sentence)
    tab.press("#tag-text", "Enter")
    tab.wait_for_function("() => document.querySelectorAll('#tag-output .token').length === 9")
    expected = api(tab, "/api/tag", sentence)
    shown = tab.eval_on_selector_all("#tag-output .token", "els => els.map(e => [e.querySelector('.word')"
                                     ".textContent, e.querySelector('.tag').textContent])")
    assert shown == [list(pair) for pair in zip(expected["tokens"], expected["tags"])]
    entities = tab.eval_on_selector_all("#tag-output .entity", "els => els.map(e => ({type: e.dataset.type, "
                                        "words: [...e.querySelectorAll('.word')].map(w => w.textContent), "
                                        "label: e.querySelector('.type').textContent, colour: e.style.background}))")
    assert [(e["type"], e["words"]) for e in entities] == [
        (s["type"], expected["tokens"][s["start"]:s["end"] + 1]) for s in expected["spans"]]
    assert all(e["label"] == e["type"] and e["colour"] == colour_of[e["type"]] for e in entities)
    assert {e["type"] for e in entities} >= {"PER", "LOC"}  # what the tiny tagger learnt
    screenshot(tab, "tag")
    tab.fill("#tag-text", "   ")
    tab.click("#tag-run")  # nothing to tag: nothing sent, nothing changed
    assert tab.locator("#tag-output .token").count() == 9
    assert not tab.problems, tab.problems


@pytest.mark.parametrize("kind,metric", [("classifier", "validation accuracy"), ("tagger", "validation entity f1")])
def test_task_training_panel_draws_the_metric_and_the_losses(browser, urls, kind, metric):
    tab = open_page(browser, urls[kind], 900, 520)
    tab.click("#tabs button[data-panel=training]")
    tab.wait_for_function("() => document.querySelectorAll('#chart-metric-1 polyline').length === 2")
    records = json.loads(tab.evaluate("async () => JSON.stringify(await (await fetch('/api/training')).json())"))
    assert tab.locator("#chart-metric-0 polyline").count() == 1  # the metric; then training and validation loss
    points = tab.get_attribute("#chart-metric-0 polyline", "points").split()
    assert len(points) == len(records["records"]) > 1
    captions = tab.eval_on_selector_all("#train-metric-charts figcaption", "els => els.map(e => e.textContent)")
    assert captions == [metric.split(" ", 1)[1] + " (validation)", "Loss (nats per example)"]
    last = records["records"][-1][{"classifier": "val_accuracy", "tagger": "val_entity_f1"}[kind]]
    assert f"{metric} {last:.3f}" in tab.inner_text("#train-status")
    assert not tab.is_visible("#train-baselines-section")  # a task has no count-model baselines
    assert tab.locator("#train-config tr").count() > 10
    widths = tab.eval_on_selector_all("#train-metric-charts figure", "els => els.map(e => e.getBoundingClientRect().width)")
    assert len(widths) == 2 and min(widths) > 300  # the figures are items of the charts row, not squeezed
    screenshot(tab, f"{kind}-training")
    assert not tab.problems, tab.problems
