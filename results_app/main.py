"""The app's entry point: ``streamlit run results_app/main.py``.

Registers the pages with ``st.navigation`` (each with a URL path, e.g. ``/tradeoff``) and runs
the selected one inside the shared frame of ``ui.run_page``. The first page answers at the root
URL and at its own path (``/overview``), like every other page.
"""

from __future__ import annotations

import hmac
import os
import sys
from pathlib import Path

# `streamlit run` puts this folder on sys.path, not the repository root the packages live in.
_ROOT = Path(__file__).resolve().parents[1]
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

import streamlit as st  # noqa: E402

from results_app import ui  # noqa: E402

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


# Session state set once the session typed the app's password; no widget uses this key. (A
# comment, not a docstring: Streamlit writes a script's bare strings onto the page.)
AUTH_KEY = "greenprune_signed_in"


def app_password() -> str | None:
    """The password a session must type: ``GREENPRUNE_APP_PASSWORD``, else ``GREENPRUNE_TOKEN``.

    None (no sign-in) only when neither is set, or when the operator sets
    ``GREENPRUNE_APP_ALLOW_ANONYMOUS=1`` (say, behind a proxy that authenticates).
    """
    if os.environ.get("GREENPRUNE_APP_ALLOW_ANONYMOUS", "").strip().lower() in {"1", "true"}:
        return None
    return os.environ.get("GREENPRUNE_APP_PASSWORD") or os.environ.get("GREENPRUNE_TOKEN") or None


def signed_in() -> bool:
    """Whether this session may see data; shows the sign-in form when it may not.

    Nothing is read from the ResultsService before this returns True.
    """
    password = app_password()
    if password is None or st.session_state.get(AUTH_KEY) is True:
        return True
    st.set_page_config(page_title="greenprune", page_icon=ui.favicon(), layout="centered")
    st.title("greenprune")
    with st.form("greenprune_sign_in"):
        typed = st.text_input("Access token", type="password", key="greenprune_password")
        submitted = st.form_submit_button("Sign in")
    if submitted:
        if hmac.compare_digest(typed.encode(), password.encode()):
            st.session_state[AUTH_KEY] = True
            st.session_state.pop("greenprune_password", None)
            st.rerun()
        st.error("That is not the access token.")
    return False


def main() -> None:
    """Sets up the page, the navigation and runs the selected page."""
    if not signed_in():
        st.stop()
    pages = [st.Page(path, title=title, url_path=url_path) for path, title, url_path in PAGES]
    # Streamlit serves the default page at the root URL only, so the first page is registered
    # twice: visible at its own path (/overview), and hidden as the default at the root.
    path, title, url_path = PAGES[0]
    pages.append(
        st.Page(path, title=title, url_path=f"{url_path}-home", default=True, visibility="hidden")
    )
    selected = st.navigation(pages)
    st.set_page_config(page_title="greenprune", page_icon=ui.favicon(), layout="wide")
    ui.run_page(selected)


main()
