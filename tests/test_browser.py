"""One real-browser test: `streamlit run app.py`, Debian's Chromium driven by Playwright, click Generate.

Set INKDIGITS_SCREENSHOT=1 to refresh docs/app.png from this run.
"""

import os
import shutil
import urllib.request
from pathlib import Path

import _serving as serving
import pytest
from _serving import CHROMIUM, ROOT
from _serving import CHROMIUM_FLAGS as FLAGS
from conftest import free_port

pytestmark = pytest.mark.browser


def image_hashes(page, images, base: str) -> list[str]:
    """SHA-256 of each shown image's bytes, fetched from the server the page got them from."""
    import hashlib

    for i in range(images.count()):
        expect_loaded = images.nth(i).evaluate("img => img.complete && img.naturalWidth > 0")
        assert expect_loaded
    sources = [images.nth(i).get_attribute("src") for i in range(images.count())]
    hashes = []
    for src in sources:
        with urllib.request.urlopen(src if src.startswith("http") else base + src, timeout=10) as r:
            hashes.append(hashlib.sha256(r.read()).hexdigest())
    return hashes


@pytest.fixture
def server(tmp_path):
    if not Path(CHROMIUM).exists():
        # An error, never a skip: `make test` installs it (scripts/ensure-chromium); elsewhere, install it yourself.
        how = "apt-get install -y chromium" if shutil.which("apt-get") else "your system's chromium package"
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium ({how}), or run `make test`, which does")
    port, log = free_port(), tmp_path / "streamlit.log"
    proc = serving.start(serving.streamlit_command(port), port, log, env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        yield f"http://127.0.0.1:{port}", log
    finally:
        serving.stop(proc)


def test_pick_a_digit_and_generate_in_chromium(server):
    from playwright.sync_api import expect, sync_playwright

    url, log = server
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(url, timeout=120_000)  # the first page load imports torch in the server
        page.get_by_role("button", name="Generate").wait_for(timeout=60_000)
        page.get_by_test_id("stSelectbox").first.click()
        page.get_by_role("option", name="3", exact=True).click()
        page.get_by_role("button", name="Generate").click()
        images = page.locator('[data-testid="stImage"] img')
        expect(images).to_have_count(5, timeout=30_000)
        expect(page.get_by_text("Digit 3 · seed", exact=False)).to_be_visible()
        for i in range(5):
            expect(images.nth(i)).to_have_js_property("complete", True)
            assert images.nth(i).evaluate("img => img.naturalWidth") > 0
        if os.environ.get("INKDIGITS_SCREENSHOT"):
            page.wait_for_timeout(500)
            page.screenshot(path=str(ROOT / "docs" / "app.png"), full_page=True)
        first = image_hashes(page, images, url)
        link = page.url
        assert "tab=digit" in link and "digit=3" in link and "seed-digit=" in link

        # The share link, opened in a fresh browser context (no shared session): the same images come back.
        other = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
        other.goto(link, timeout=120_000)
        again = other.locator('[data-testid="stImage"] img')
        expect(again).to_have_count(5, timeout=60_000)
        assert image_hashes(other, again, url) == first
        browser.close()
    text = log.read_text()
    assert "Traceback" not in text and "torch.classes" not in text, text
