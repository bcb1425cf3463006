"""The web page of a published repository, checked in headless Chromium the way a person sees
it: file tree with sizes, rendered model card with its metadata table, history, open PRs.

Needs /usr/bin/chromium and /usr/bin/chromedriver (tests/hub/setup_browser.sh installs them).
A screenshot is saved under the pytest tmp dir and copied to tests/hub/artifacts/.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from huggingface_hub import CommitOperationAdd, HfApi

from .hub_helpers import unique

ARTIFACTS = Path(__file__).with_name("artifacts")
CARD = """---
license: apache-2.0
library_name: tensorferry
tags:
- converted
---
# Tiny BERT

Converted from **PyTorch** to Flax.

<script>document.title = "pwned"</script>

| layer | params |
|-------|--------|
| embeddings | 1024 |
"""


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory):
    if not (os.path.exists("/usr/bin/chromium") and os.path.exists("/usr/bin/chromedriver")):
        pytest.fail("Chromium missing: run tests/hub/setup_browser.sh")  # a missing browser is a failure, not a skip
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1280,1600", f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        opts.add_argument(flag)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def test_repository_page_in_chromium(browser, api: HfApi, hub, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    repo = f"alice/{unique('tiny-bert')}"
    api.create_repo(repo)
    api.create_commit(repo, [CommitOperationAdd("README.md", CARD.encode()),
                             CommitOperationAdd("config.json", b'{"hidden_size": 32}\n'),
                             CommitOperationAdd("flax/flax_model.msgpack", os.urandom(1_500_000))],
                      commit_message="Publish converted weights")
    api.create_commit(repo, [CommitOperationAdd("NOTES.md", b"notes\n")], commit_message="Add notes",
                      create_pr=True)

    browser.get(f"{hub.url}/")
    assert repo in browser.find_element(By.ID, "repos").text
    browser.find_element(By.LINK_TEXT, repo).click()

    assert browser.find_element(By.TAG_NAME, "h1").text == repo
    card = browser.find_element(By.ID, "card")
    assert card.find_element(By.TAG_NAME, "h1").text == "Tiny BERT"
    assert card.find_element(By.TAG_NAME, "strong").text == "PyTorch"
    meta = {r.find_element(By.TAG_NAME, "th").text: r.find_element(By.TAG_NAME, "td").text
            for r in card.find_elements(By.CSS_SELECTOR, "table.metadata tr")}
    assert meta == {"license": "apache-2.0", "library_name": "tensorferry", "tags": "converted"}
    assert "embeddings" in card.find_element(By.CSS_SELECTOR, ".card-body table").text
    # Raw HTML in a card is shown as text and never runs.
    assert browser.title == repo and '<script>document.title = "pwned"</script>' in card.text

    files = browser.find_element(By.ID, "files")
    rows = [tuple(td.text for td in tr.find_elements(By.TAG_NAME, "td"))
            for tr in files.find_elements(By.CSS_SELECTOR, "tbody tr")]
    assert ("flax/", "") in rows
    assert ("flax_model.msgpackLFS", "1.5 MB") in [(a.replace("\n", ""), b) for a, b in rows]
    assert ("config.json", "20 B") in rows
    history = browser.find_element(By.ID, "history").text
    assert "Publish converted weights" in history and "initial commit" in history
    assert "#1 Add notes" in browser.find_element(By.ID, "pulls").text

    shot = tmp_path / "repo-page.png"
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copy(shot, ARTIFACTS / "repo-page.png")

    browser.get(f"{hub.url}/alice/no-such-repo")
    assert "Not found" in browser.find_element(By.TAG_NAME, "h1").text
