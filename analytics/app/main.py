"""The app's entry point: ``streamlit run analytics/app/main.py``.

Registers the pages with ``st.navigation`` (each with a URL path, e.g. ``/tradeoff``) and runs
the selected one inside the shared frame of ``ui.run_page``.
"""

from __future__ import annotations

import sys
from pathlib import Path

# `streamlit run` puts this folder on sys.path, not the repository root the packages live in.
_ROOT = Path(__file__).resolve().parents[2]
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

import streamlit as st  # noqa: E402

from analytics.app import ui  # noqa: E402

# Each page: script (relative to this file), title, URL path. The scripts live in app_pages/,
# not pages/: a pages/ folder next to the main script makes Streamlit run a page opened by URL
# on a fresh server as a stand-alone v1 page, without this script's frame. No page icons: the
# browser fetches a Material icon from fonts.gstatic.com as the favicon, which fails offline.
PAGES: list[tuple[str, str, str]] = [
    ("app_pages/overview.py", "Overview", "overview"),
    ("app_pages/tradeoff.py", "Trade-off", "tradeoff"),
    ("app_pages/sparsity.py", "Sparsity curves", "sparsity"),
    ("app_pages/tasks.py", "Tasks", "tasks"),
    ("app_pages/run_detail.py", "Run detail", "run"),
    ("app_pages/compare.py", "Compare", "compare"),
]


def main() -> None:
    """Sets up the page, the navigation and runs the selected page."""
    pages = [
        st.Page(path, title=title, url_path=url_path, default=index == 0)
        for index, (path, title, url_path) in enumerate(PAGES)
    ]
    selected = st.navigation(pages)
    st.set_page_config(page_title="greenprune", page_icon=ui.favicon(), layout="wide")
    ui.run_page(selected)


main()
