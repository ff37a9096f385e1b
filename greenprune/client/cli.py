"""The ``greenprune`` command: up, down, status, run, report, cancel, reference-model build.

This module only parses arguments and prints; the work is in ``stack`` (the local stack),
``runner`` (plans and jobs) and ``report`` (the results table).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.table import Table

from greenprune.client import figures, html_report, report, runner, stack
from greenprune.client.display import LineDisplay, rich_progress
from greenprune.client.plan import Plan, ProfileStep, PruneStep, plan_experiment
from greenprune.client.sdk import Client, RpcError
from greenprune.client.spec import ExperimentFileError, LoadedExperiment, load_experiment
from greenprune.core.errors import GreenpruneError
from greenprune.rpc.job_api import EVAL_JOBS, PRUNE_JOBS

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_UNAVAILABLE, EXIT_INTERRUPTED = 0, 1, 2, 3, 130

# Wide enough for the results table when the output is a file or a pipe.
console = Console(highlight=False, width=None if sys.stdout.isatty() else 160)
errors = Console(stderr=True, highlight=False, width=None if sys.stderr.isatty() else 160)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="greenprune",
        description="Prune language models and measure what it buys: accuracy against energy.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    up = commands.add_parser("up", help="start the local stack (services and app)")
    up.add_argument("--no-app", action="store_true", help="start the services only")
    up.add_argument("--timeout", type=float, default=180.0, help="seconds to wait for health")
    up.add_argument(
        "--ray",
        metavar="ADDRESS",
        help="run the jobs on Ray: 'auto' (a local Ray head, started if needed) or ray://host:port",
    )

    down = commands.add_parser("down", help="stop the local stack")
    down.add_argument(
        "--timeout", type=float, default=30.0, help="seconds between SIGTERM and SIGKILL"
    )

    status = commands.add_parser("status", help="health and job counts of the local stack")
    status.add_argument("--app-url", action="store_true", help="print only the app's URL")

    run = commands.add_parser("run", help="run an experiment file, skipping what is recorded")
    run.add_argument("file", type=Path, help="the experiment file (YAML)")
    run.add_argument("--dry-run", action="store_true", help="print the plan and submit nothing")
    run.add_argument(
        "--reconnect-timeout",
        type=float,
        default=120.0,
        help="seconds to wait for a service that went away before failing its steps",
    )
    run.add_argument("--no-progress", action="store_true", help="no progress bars")

    rep = commands.add_parser("report", help="the results table from the ResultsService")
    rep.add_argument("--experiment", default="", help="only this experiment")
    rep.add_argument(
        "--file",
        type=Path,
        default=None,
        help="the experiment file: its experiment, and its text in the HTML report",
    )
    rep.add_argument("--format", choices=report.FORMATS, default="table")
    rep.add_argument("--results", default="", help="ResultsService address (default: local)")
    rep.add_argument(
        "--html",
        type=Path,
        default=None,
        metavar="FILE",
        help="also write the experiment's figures and tables as one self-contained HTML file",
    )
    rep.add_argument(
        "--figures",
        type=Path,
        default=None,
        metavar="DIR",
        help="also write the experiment's figures as SVG and PNG into DIR",
    )

    ckpt = commands.add_parser("checkpoint", help="a checkpoint's model card, or an export")
    ckpt_actions = ckpt.add_subparsers(dest="action", required=True, metavar="ACTION")
    card = ckpt_actions.add_parser(
        "card", help="rewrite a checkpoint's README.md with the verdicts recorded for it"
    )
    card.add_argument("id", help="the checkpoint id")
    card.add_argument("--results", default="", help="ResultsService address (default: local)")
    card.add_argument("--checkpoints-dir", type=Path, default=None, help="default: the stack's")
    export = ckpt_actions.add_parser(
        "export", help="copy a checkpoint plain transformers loads into a folder"
    )
    export.add_argument("id", help="the checkpoint id")
    export.add_argument("dir", type=Path, help="the folder to write (new or empty)")
    export.add_argument("--checkpoints-dir", type=Path, default=None, help="default: the stack's")

    cancel = commands.add_parser("cancel", help="cancel the queued and running jobs of a file")
    cancel.add_argument("file", type=Path, help="the experiment file (YAML)")

    reference = commands.add_parser("reference-model", help="the embedded reference model")
    actions = reference.add_subparsers(dest="action", required=True, metavar="ACTION")
    build = actions.add_parser("build", help="build (or find cached) a reference model")
    build.add_argument("--name", default="tiny-llama", help="which reference model")
    build.add_argument("--cache-dir", type=Path, default=None, help="the cache root")
    build.add_argument("--force", action="store_true", help="rebuild even when cached")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the ``greenprune`` command line; returns the exit code."""
    args = _parser().parse_args(argv)
    handlers = {
        "up": _up,
        "down": _down,
        "status": _status,
        "run": _run,
        "report": _report,
        "cancel": _cancel,
        "checkpoint": _checkpoint,
        "reference-model": _reference_model,
    }
    try:
        return handlers[args.command](args)
    except (stack.StackError, GreenpruneError) as exc:
        errors.print(f"error: {exc}", markup=False)
        return EXIT_FAILED
    except KeyboardInterrupt:
        errors.print("interrupted")
        return EXIT_INTERRUPTED


# -- the local stack -----------------------------------------------------------------------------


def _up(args: argparse.Namespace) -> int:
    config = stack.StackConfig.from_env()
    statuses = stack.up(
        config,
        with_app=not args.no_app,
        timeout=args.timeout,
        log=lambda line: console.print(line),
        ray=args.ray,
    )
    table = Table("component", "address", "pid", "health", "", header_style="bold")
    for item in statuses:
        table.add_row(item.name, item.address, str(item.pid or "-"), item.health, item.note)
    console.print(table)
    console.print(f"logs: {config.log_dir}")
    if not args.no_app:
        console.print(f"app: {config.app_url}")
    return EXIT_OK


def _down(args: argparse.Namespace) -> int:
    config = stack.StackConfig.from_env()
    stopped = stack.down(config, timeout=args.timeout, log=lambda line: console.print(line))
    if not stopped:
        console.print("nothing was running")
    return EXIT_OK


def _status(args: argparse.Namespace) -> int:
    config = stack.StackConfig.from_env()
    if args.app_url:
        print(config.app_url)
        return EXIT_OK
    statuses = stack.status(config)
    counts = asyncio.run(_job_counts(config, statuses))
    table = Table("component", "address", "pid", "health", "jobs", header_style="bold")
    for item in statuses:
        jobs = counts.get(item.name)
        if jobs is None:
            text = "-"
        else:
            text = ", ".join(f"{state.lower()} {n}" for state, n in sorted(jobs.items())) or "none"
        table.add_row(item.name, item.address, str(item.pid or "-"), item.health, text)
    console.print(table)
    console.print(f"state: {config.home}   logs: {config.log_dir}")
    results = next((i for i in statuses if i.name == "results" and i.health == "SERVING"), None)
    if results is not None:
        orphans = orphaned_checkpoints(config.home / "checkpoints", results.address, config.token)
        if orphans:
            console.print(
                f"{len(orphans)} checkpoint(s) on disk with no prune run in the results store"
                " (a job still reporting, or work to report by running the experiment again):",
                markup=False,
            )
            for path in orphans:
                console.print(f"  {path}", markup=False)
    return EXIT_OK


def orphaned_checkpoints(
    checkpoints_dir: Path, results_address: str, token: str | None
) -> list[Path]:
    """Checkpoint folders (with a manifest) that no prune run in the ResultsService names."""
    from greenprune.api.results.v1 import results_pb2, results_pb2_grpc
    from greenprune.core import checkpoint
    from greenprune.rpc.client import read_pages, sync_channel

    if not checkpoints_dir.is_dir():
        return []
    on_disk = {
        p.name: p
        for p in checkpoints_dir.iterdir()
        if not p.name.startswith(".") and (p / checkpoint.MANIFEST_NAME).is_file()
    }
    if not on_disk:
        return []
    known: set[str] = set()
    with contextlib.closing(sync_channel(results_address, token)) as channel:
        stub = results_pb2_grpc.ResultsServiceStub(channel)
        request = results_pb2.ListPruneRunsRequest(page_size=1000)
        for response in read_pages(lambda page: stub.ListPruneRuns(page, timeout=30), request):
            known.update(run.result.checkpoint_id for run in response.runs)
    return [path for name, path in sorted(on_disk.items()) if name not in known]


async def _job_counts(
    config: stack.StackConfig, statuses: Sequence[stack.ComponentStatus]
) -> dict[str, dict[str, int]]:
    counts: dict[str, dict[str, int]] = {}
    apis = {api.service: api for api in (PRUNE_JOBS, EVAL_JOBS)}
    for item in statuses:
        if item.name in apis and item.health == "SERVING":
            counts[item.name] = await runner.job_counts(item.address, apis[item.name], config.token)
    return counts


# -- experiments ---------------------------------------------------------------------------------


def _load(path: Path) -> LoadedExperiment | None:
    try:
        return load_experiment(path)
    except FileNotFoundError:
        errors.print(f"error: {path}: no such file")
    except ExperimentFileError as exc:
        errors.print(f"error: {path} is not a valid experiment file:", markup=False)
        errors.print(str(exc), markup=False)
    return None


def _addresses(loaded: LoadedExperiment) -> runner.Addresses:
    return runner.resolve_addresses(loaded.experiment, stack.local_addresses())


def _run(args: argparse.Namespace) -> int:
    loaded = _load(args.file)
    if loaded is None:
        return EXIT_USAGE
    plan = plan_experiment(loaded)
    addresses = _addresses(loaded)
    token = runner.default_token()
    if 0.0 not in loaded.experiment.pruning.ratios:
        console.print(
            "[yellow]note:[/] no ratio 0 in pruning.ratios, so no changes against "
            "the unpruned model"
        )
    if args.dry_run:
        recorded = asyncio.run(runner.lookup_recorded(plan, addresses, token))
        console.print(_plan_table(plan, recorded))
        if recorded is None:
            console.print(
                f"(the ResultsService at {addresses.results} is not reachable: "
                "which steps are recorded is unknown)"
            )
        unchecked = asyncio.run(runner.check_plan(plan, addresses, token, recorded or set()))
        if unchecked is None:
            console.print("the services accept every step to run")
        else:
            console.print(f"(the steps were not checked by the services: {unchecked})")
        return EXIT_OK
    started = time.monotonic()
    try:
        asyncio.run(runner.Runner(plan, addresses, token).check_reachable())
        with contextlib.ExitStack() as stack_:
            display = (
                LineDisplay(console)
                if args.no_progress
                else stack_.enter_context(rich_progress(console))
            )
            work = runner.Runner(plan, addresses, token, display, args.reconnect_timeout)
            outcome = asyncio.run(work.run())
    except KeyboardInterrupt:
        errors.print(
            "\nStopped waiting. Jobs already submitted keep running in the services. Run "
            f"`greenprune run {args.file}` again to collect them and finish the rest, or "
            f"`greenprune cancel {args.file}` to cancel them.",
            markup=False,
        )
        return EXIT_INTERRUPTED
    except runner.ServiceUnavailableError as exc:
        errors.print(f"error: {exc}", markup=False)
        return EXIT_UNAVAILABLE
    return _print_outcome(outcome, time.monotonic() - started, addresses.results)


def _plan_table(plan: Plan, recorded: set[str] | None) -> Table:
    table = Table(title=f"plan of {plan.experiment}", header_style="bold")
    for column in ("step", "model", "ratio", "task", "request_id", "status"):
        table.add_column(column, overflow="fold")
    for step in plan.steps:
        state = (
            "?" if recorded is None else ("recorded" if step.request_id in recorded else "to run")
        )
        if isinstance(step, PruneStep):
            table.add_row("prune", step.model, f"{step.ratio:.2f}", "", step.request_id, state)
        elif isinstance(step, ProfileStep):
            ratios = ", ".join(f"{s.ratio:.2f}" for s in step.prunes)
            table.add_row("profile", step.model, ratios, "", step.request_id, state)
        else:
            table.add_row(
                "eval", step.prune.model, f"{step.prune.ratio:.2f}", step.task, step.run_id, state
            )
    return table


def _print_outcome(outcome: runner.RunOutcome, seconds: float, results: str) -> int:
    with Client(results=results) as client:
        if outcome.evaluated:
            try:
                _print_results(client, outcome.plan.experiment)
            except RpcError as exc:
                errors.print(f"error: reading the results at {results}: {exc}", markup=False)
        _refresh_cards(client, outcome.plan.experiment)
    recorded = sum(1 for o in outcome.outcomes.values() if o.state == runner.RECORDED)
    console.print(
        f"{len(outcome.plan.steps)} steps: {recorded} already recorded, "
        f"{outcome.submitted} submitted; {seconds:.0f} s"
    )
    failures = outcome.failures
    skipped = [o for o in outcome.outcomes.values() if o.state == runner.SKIPPED]
    if not failures and not skipped:
        return EXIT_OK
    for step, result in failures:
        job = f" ({result.job_name})" if result.job_name else ""
        errors.print(f"failed: {step.label}{job}: {result.message}", markup=False)
    if skipped:
        errors.print(f"skipped: {len(skipped)} steps whose pruning failed", markup=False)
    errors.print("Run the same file again to retry what failed.", markup=False)
    return EXIT_FAILED


def _refresh_cards(client: Client, experiment: str) -> None:
    """Rewrites the model cards of the experiment's checkpoints with their verdicts."""
    from greenprune.client.cards import refresh_cards

    try:
        written = refresh_cards(client, experiment)
    except (GreenpruneError, OSError) as exc:
        errors.print(f"warning: the model cards were not updated: {exc}", markup=False)
        return
    if written:
        console.print(f"model cards updated: {len(written)} (README.md in each checkpoint)")


def _report(args: argparse.Namespace) -> int:
    experiment = args.experiment
    experiment_text = ""
    if args.file is not None:
        loaded = _load(args.file)
        if loaded is None:
            return EXIT_USAGE
        experiment = experiment or loaded.experiment.name
        experiment_text = args.file.read_text(encoding="utf-8")
    if (args.html or args.figures) and not experiment:
        errors.print("error: --html and --figures need --experiment or --file", markup=False)
        return EXIT_USAGE
    client = Client(results=args.results or None)
    try:
        code = _print_results(client, experiment, args.format)
        if args.figures is not None:
            written = figures.write_figures(client.figures(experiment), args.figures)
            console.print(f"figures: {len(written)} files in {args.figures}", markup=False)
        if args.html is not None:
            _write_html(client, experiment, args.html, args.file, experiment_text)
            console.print(f"HTML report: {args.html.resolve()}", markup=False)
        return code
    except RpcError as exc:
        errors.print(
            f"error: the ResultsService at {client.addresses.results}: {exc}", markup=False
        )
        return EXIT_UNAVAILABLE
    finally:
        client.close()


def _tables(client: Client, experiment: str) -> list[Table]:
    """The tables of the report, from the views (the terminal and the HTML show these)."""
    return report.report_tables(
        client.report_rows(experiment),
        client.results("findings", experiment=experiment),
        client.results("method_comparison", experiment=experiment),
        client.results("payback", experiment=experiment),
        experiment,
        client.results("payback_windows", experiment=experiment),
    )


def _write_html(client: Client, experiment: str, path: Path, file: Path | None, text: str) -> None:
    from importlib import metadata

    provenance = html_report.Provenance(
        experiment=experiment,
        results=client.addresses.results,
        versions=client.versions(experiment),
        experiment_file=file,
        experiment_text=text,
        greenprune_version=metadata.version("greenprune"),
    )
    document = html_report.render_html(
        _tables(client, experiment), client.figures(experiment), provenance
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(document, encoding="utf-8")


def _print_results(client: Client, experiment: str, output_format: str = "table") -> int:
    """Prints the results table and, as tables, the profile, method and payback findings."""
    if output_format != "table":
        report.print_rows(client.report_rows(experiment), output_format, console, experiment)
        return EXIT_OK
    tables = _tables(client, experiment)
    if not tables[0].row_count:
        console.print("no results recorded" + (f" for {experiment}" if experiment else ""))
        return EXIT_OK
    for table in tables:
        console.print(table)
    return EXIT_OK


def _checkpoint(args: argparse.Namespace) -> int:
    from greenprune.client.cards import refresh_cards
    from greenprune.core import checkpoint

    if args.action == "export":
        folder = args.checkpoints_dir or stack.StackConfig.from_env().home / "checkpoints"
        path = checkpoint.checkpoint_dir(folder, args.id)
        checkpoint.export_checkpoint(path, args.dir)
        console.print(
            f"exported {args.id} to {args.dir.resolve()}: load it with "
            f'AutoModelForCausalLM.from_pretrained("{args.dir}")',
            markup=False,
        )
        return EXIT_OK
    client = Client(results=args.results or None, checkpoints_dir=args.checkpoints_dir)
    try:
        written = refresh_cards(client, checkpoint_ids=[args.id])
    except RpcError as exc:
        if exc.code_name != "UNAVAILABLE":
            raise
        errors.print(
            f"error: the ResultsService at {client.addresses.results}: {exc}", markup=False
        )
        return EXIT_UNAVAILABLE
    finally:
        client.close()
    if not written:
        errors.print(
            f"error: checkpoint {args.id!r} is not in {client.checkpoints_dir} on this machine",
            markup=False,
        )
        return EXIT_FAILED
    console.print(f"model card: {written[0]}", markup=False)
    return EXIT_OK


def _cancel(args: argparse.Namespace) -> int:
    loaded = _load(args.file)
    if loaded is None:
        return EXIT_USAGE
    addresses = _addresses(loaded)
    with Client(results=addresses.results, pruning=addresses.pruning, eval=addresses.eval) as c:
        names = c.cancel(loaded.experiment.name)
    for name in names:
        console.print(f"cancelled {name}")
    if not names:
        console.print(f"no queued or running jobs of {loaded.experiment.name}")
    return EXIT_OK


def _reference_model(args: argparse.Namespace) -> int:
    from greenprune.core.reference import ensure_reference_model

    started = time.monotonic()
    path = ensure_reference_model(
        args.name, args.cache_dir, force=args.force, log=lambda line: console.print(line)
    )
    console.print(f"reference:{args.name} is at {path} ({time.monotonic() - started:.1f} s)")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
