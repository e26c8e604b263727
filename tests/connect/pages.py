"""Steps a user takes in the connect pages, written once for the browser tests."""

from __future__ import annotations

import re
from typing import Any

# Bounds of the keyboard walk through a form: no page has more focusable elements than this.
MAX_TAB_STOPS = 40


def field(page: Any, label: str) -> Any:
    """Return the input labelled ``label``, or ``label (optional)``."""
    return page.get_by_label(re.compile(rf"^{re.escape(label)}( \(optional\))?$"))


async def fill_by_label(page: Any, values: dict[str, str]) -> None:
    """Type each value into the input whose visible label is the key."""
    for label, value in values.items():
        await field(page, label).fill(value)


async def focused_id(page: Any) -> str:
    return str(await page.evaluate("document.activeElement ? document.activeElement.id : ''"))


async def tab_to(page: Any, element_id: str) -> list[str]:
    """Press Tab until the element with ``element_id`` has focus; return the ids passed on the way."""
    passed: list[str] = []
    for _ in range(MAX_TAB_STOPS):
        await page.keyboard.press("Tab")
        current = await focused_id(page)
        passed.append(current)
        if current == element_id:
            return passed
    raise AssertionError(f"Tab never reached #{element_id}; focus went through {passed}")
