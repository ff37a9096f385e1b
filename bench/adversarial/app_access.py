"""Category 5, the app without the token: anonymous and wrong-token sessions see no data."""

from __future__ import annotations

import inspect
import re
from typing import Any

from bench.adversarial.harness import REPO, Campaign, patched_env
from bench.adversarial.verdicts import ACCEPT, ACCEPTED, BAD, CLEAN, REFUSE


def category_app(c: Campaign) -> None:
    """Anonymous and wrong-token Streamlit sessions see no data and read nothing."""
    from streamlit.testing.v1 import AppTest

    from results_app import data

    main = REPO / "results_app" / "main.py"
    pages = sorted(
        p.relative_to(main.parent).as_posix() for p in (main.parent / "app_pages").glob("*.py")
    )
    reads: list[str] = []
    saved: dict[str, Any] = {}
    for name in dir(data):
        function = getattr(data, name)
        if (
            inspect.isfunction(function)
            and not name.startswith("_")
            and (getattr(function, "__module__", "") == data.__name__)
        ):

            def spy(*args: Any, _name: str = name, _f: Any = function, **kwargs: Any) -> Any:
                reads.append(_name)
                return _f(*args, **kwargs)

            saved[name] = function
            setattr(data, name, spy)

    def shows_data(app: Any) -> bool:
        return bool(
            list(app.get("vega_lite_chart")) or list(app.dataframe) or list(app.sidebar.selectbox)
        )

    def session(
        label: str,
        typed: str | None = None,
        page: str | None = None,
        query: dict[str, str] | None = None,
        expect: str = REFUSE,
    ) -> None:
        reads.clear()
        try:
            app = AppTest.from_file(str(main), default_timeout=60)
            for key, value in (query or {}).items():
                app.query_params[key] = value
            if page:
                app.switch_page(page)
            app.run()
            if typed is not None and app.text_input:
                app.text_input[0].input(typed)
                app.button[0].click().run()
        except Exception as exc:  # noqa: BLE001
            c.record("5", label, BAD, f"{type(exc).__name__}: {str(exc)[:200]}")
            return
        crash = ""
        if app.exception:
            error = app.exception[0]
            trace = "".join(error.stack_trace)
            frames = re.findall(r'File "[^"]*?(results_(?:service|app)/[^"]+)", line (\d+)', trace)
            where = ":".join(frames[-1]) if frames else "?"
            crash = f"exception in the app at {where}: {str(error.value)[:200]}"
        form = any(field.label == "Access token" for field in app.text_input)
        if expect == ACCEPT:
            if form:
                c.record("5", label, BAD, "the right token did not sign the session in")
            elif crash:
                c.record("5", label, BAD, f"signed in, then stored data broke the page: {crash}")
            elif not shows_data(app):
                c.record("5", label, BAD, "the signed-in session shows no data")
            else:
                c.record("5", label, ACCEPTED)
        elif shows_data(app) or reads:
            c.record("5", label, BAD, f"data shown without the token (reads: {sorted(set(reads))})")
        elif not form or crash:
            c.record("5", label, BAD, crash or "no sign-in form")
        else:
            c.record("5", label, CLEAN)

    from greenprune.api.results.v1 import results_pb2 as pb
    from tests import samples

    prunes, evals = samples.demo_study(experiment="adv-app")  # data for the signed-in control
    for run in prunes:
        c.raw("results", "RecordPruneRun", pb.RecordPruneRunRequest(run=run))
    c.raw("results", "BatchRecordEvalRuns", pb.BatchRecordEvalRunsRequest(runs=evals))
    token = c.token
    try:
        with patched_env(
            GREENPRUNE_APP_RESULTS_ADDRESS=c.servers["results"].address,
            GREENPRUNE_TOKEN=token,
            GREENPRUNE_APP_PASSWORD=None,
            GREENPRUNE_APP_ALLOW_ANONYMOUS=None,
        ):
            session("anonymous, first page")
            for page in pages if not c.quick else pages[:1]:
                session(f"anonymous, page {page}", page=page)
            wrong = [
                ("wrong token", "wrong"),
                ("empty token", ""),
                ("token + space", token + " "),
                ("token minus last char", token[:-1]),
                ("upper-case token", token.upper()),
                ("10,000 characters", "x" * 10_000),
            ]
            for label, typed in wrong:
                session(label, typed=typed)
            session("token as ?token= query parameter", query={"token": token})
            session("token as ?password= query parameter", query={"password": token})
            session("control: the right token", typed=token, expect=ACCEPT)
    finally:
        for name, function in saved.items():
            setattr(data, name, function)
