"""With a token set, an anonymous app session sees a sign-in form and no data."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from results_app import data
from tests.app.conftest import ResultsServer

MAIN = Path(__file__).resolve().parents[2] / "results_app" / "main.py"


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records every call into the app's data layer (the one place that reads the service)."""
    seen: list[str] = []
    for name in dir(data):
        function = getattr(data, name)
        if (
            callable(function)
            and not name.startswith("_")
            and getattr(function, "__module__", "") == data.__name__
        ):

            def spy(*args, _name=name, _function=function, **kwargs):  # noqa: ANN002, ANN003, ANN202
                seen.append(_name)
                return _function(*args, **kwargs)

            monkeypatch.setattr(data, name, spy)
    return seen


def _app() -> AppTest:
    app = AppTest.from_file(str(MAIN), default_timeout=30)
    app.run()
    return app


def _shows_data(app: AppTest) -> bool:
    return bool(
        list(app.get("vega_lite_chart")) or list(app.dataframe) or list(app.sidebar.selectbox)
    )


def test_an_anonymous_session_sees_no_data(app_env: ResultsServer, reads: list[str]) -> None:
    app = _app()
    assert not app.exception
    assert [field.label for field in app.text_input] == ["Access token"]
    assert not _shows_data(app)
    assert reads == []


def test_a_wrong_token_is_refused(app_env: ResultsServer, reads: list[str]) -> None:
    app = _app()
    app.text_input[0].input("not-the-token")
    app.button[0].click().run()
    assert [error.value for error in app.error] == ["That is not the access token."]
    assert not _shows_data(app)
    assert reads == []


def test_the_token_signs_the_session_in(app_env: ResultsServer) -> None:
    app = _app()
    app.text_input[0].input(app_env.token)
    app.button[0].click().run()
    assert not app.exception and not app.error
    assert _shows_data(app)


def test_a_separate_app_password_wins(
    app_env: ResultsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GREENPRUNE_APP_PASSWORD", "open sesame")
    app = _app()
    app.text_input[0].input(app_env.token)
    app.button[0].click().run()
    assert not _shows_data(app)
    app.text_input[0].input("open sesame")
    app.button[0].click().run()
    assert _shows_data(app)
