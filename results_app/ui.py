"""Streamlit pieces every page shares: the page frame, the sidebar filter, downloads, warnings."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd
import streamlit as st
from PIL import Image, ImageDraw
from streamlit.navigation.page import StreamlitPage

from results_app import data
from results_app.settings import AppSettings

EMPTY_STORE_MESSAGE = (
    "No runs yet: run `make demo` or `greenprune run experiments/demo.yaml`, then reload this page."
)
ESTIMATE_WARNING = (
    "Energy is an estimate (CPU-load model, no power counters): the figures come from a TDP "
    "and load model, not from RAPL or NVML readings. Compare configurations with each other, "
    "not with other machines."
)
ALL = "(all)"
_FILTER_KEY = "greenprune_filter"


def run_page(page: StreamlitPage) -> None:
    """Runs ``page`` inside the app's frame: service checks, the sidebar filter, error display.

    A service that is down or refuses the token shows one ``st.error``; an empty store shows
    what to run. Neither shows a traceback.

    Args:
        page: The page ``st.navigation`` selected.
    """
    try:
        experiments = data.query_view("experiments")
    except data.ServiceError as error:
        st.title(page.title)
        st.error(str(error))
        return
    if experiments.empty:
        st.title(page.title)
        st.info(EMPTY_STORE_MESSAGE)
        return
    _sidebar(experiments)
    try:
        page.run()
    except data.ServiceError as error:
        st.error(str(error))


def _sidebar(experiments: pd.DataFrame) -> None:
    with st.sidebar:
        # Runs outside any experiment show under "(all)" only: an empty filter does not filter.
        names = sorted(name for name in experiments["experiment"].dropna().unique() if name)
        experiment = st.selectbox("Experiment", [ALL, *names], key="filter_experiment")
        rows = (
            experiments
            if experiment == ALL
            else experiments[experiments["experiment"] == experiment]
        )
        models = sorted(
            {
                model.strip()
                for names_text in rows["model_names"].dropna()
                for model in str(names_text).split(", ")
                if model.strip()
            }
        )
        model = st.selectbox("Model", [ALL, *models], key="filter_model")
        st.session_state[_FILTER_KEY] = data.Filter(
            experiment="" if experiment == ALL else experiment,
            model="" if model == ALL else model,
        )
        if st.button("Refresh", help="Ask the results service again now"):
            st.cache_data.clear()
            st.rerun()
        st.caption(f"Results service: `{AppSettings().results_address}`")


@st.cache_resource(show_spinner=False)
def favicon() -> Image.Image:
    """A small green disc, drawn here so that the favicon needs no network."""
    image = Image.new("RGBA", (32, 32), (0, 0, 0, 0))
    ImageDraw.Draw(image).ellipse((2, 2, 29, 29), fill=(46, 139, 87, 255))
    return image


def current_filter() -> data.Filter:
    """Returns the filter the sidebar selected (no filter before the sidebar is drawn)."""
    return st.session_state.get(_FILTER_KEY, data.Filter())


def downloads(view: str, view_filter: data.Filter | None = None, label: str | None = None) -> None:
    """Shows CSV and Parquet download buttons for a view, fetched from ExportView on click.

    Args:
        view: A key of ``data.VIEWS``.
        view_filter: The filter the exported rows follow; the sidebar's when None.
        label: What the buttons call the view; the view's name when None.
    """
    chosen = view_filter if view_filter is not None else current_filter()
    name = label or view.replace("_", " ")
    columns = st.columns(2)
    for column, fmt in zip(columns, ("csv", "parquet"), strict=True):
        column.download_button(
            f"Download {name} ({fmt.upper()})",
            data=_exporter(view, chosen, fmt),
            file_name=f"greenprune-{view}.{fmt}",
            mime=data.EXPORT_FORMATS[fmt][1],
            key=f"download-{view}-{fmt}",
            on_click="ignore",
            width="stretch",
        )


def _exporter(view: str, view_filter: data.Filter, fmt: str) -> Callable[[], bytes]:
    def export() -> bytes:
        return data.export_view(view, view_filter, fmt)

    return export


def estimate_warning(estimated: pd.Series | bool) -> None:
    """Shows the estimated-energy warning when any of the figures shown is an estimate."""
    flag = bool(estimated) if isinstance(estimated, bool) else bool(estimated.fillna(False).any())
    if flag:
        st.warning(ESTIMATE_WARNING, icon="⚠️")


def chart(spec: object) -> None:
    """Draws an Altair chart at the container's width."""
    st.altair_chart(spec, width="stretch")


def pick(label: str, options: list[str], key: str, default: str | None = None) -> str:
    """A selectbox that keeps its choice across reruns and starts at ``default`` when given."""
    index = options.index(default) if default in options else 0
    return st.selectbox(label, options, index=index, key=key)
