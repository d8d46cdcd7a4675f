"""Fixtures shared by the test modules (pytest finds them here); plain helpers live in ui_fixtures.py."""

import pytest
from ui_fixtures import ARGS, CHROMIUM


@pytest.fixture(scope="module")
def browser():
    """One headless Chromium (the system's, off the network) for a test module."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()
