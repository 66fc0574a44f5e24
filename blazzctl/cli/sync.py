"""`blazzctl sync`: ask the owning daemons to read chats, contacts and groups from WhatsApp."""

from __future__ import annotations

import sys
import time
from typing import Optional

import typer

from blazzctl.cli import output
from blazzctl.cli.context import ConfigOption, JsonOption, WorkspaceOption, keep_running, state
from blazzctl.errors import InvalidInput, OperationFailed

app = typer.Typer(no_args_is_help=True, help="Sync chats, contacts and groups from WhatsApp (by hand or from cron).")

POLL = 0.5  # seconds between looks at the runs while waiting


@app.command("run")
def run(refs_: Optional[list[str]] = typer.Argument(None, metavar="REF",
                                                    help="Accounts (id, uuid, session id or name)."),
        workspace: WorkspaceOption = None,
        all_: bool = typer.Option(False, "--all", help="Every running account of every workspace."),
        kind: str = typer.Option("all", "--kind", metavar="chats|contacts|groups|all", help="What to sync."),
        wait: bool = typer.Option(False, "--wait", help="Wait for the runs, then print a summary per account."),
        timeout: float = typer.Option(600.0, "--timeout", min=1, help="Seconds to wait with --wait."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="Print errors only (for cron, which mails output)."),
        config: ConfigOption = None, json: JsonOption = False) -> None:
    """Request a sync of accounts; their daemons carry it out (one active run per account).

    Give accounts, or --workspace WS for its running accounts, or --all. With --wait the
    exit status is 0 when every run succeeded and 1 when any failed or timed out.

    Example: blazzctl sync run --all --wait --quiet
    """
    from blazzctl.services import audit, refs, sync

    if not refs_ and not workspace and not all_:
        raise InvalidInput("no accounts given", hint="Give REF..., --workspace WS or --all.")
    if all_ and (refs_ or workspace):
        raise InvalidInput("--all cannot be combined with REF or --workspace")
    st = state(config)
    with st.db.session() as session:
        if refs_:
            accounts = [refs.account(session, r, workspace_ref=workspace) for r in refs_]
            targets = sync.targets(session, accounts=accounts)
        else:
            scope = refs.workspace(session, workspace) if workspace else None
            targets = sync.targets(session, workspace=scope)
        requested = sync.request(session, accounts=targets, kind=sync.parse_kind(kind),
                                 requested_by=audit.os_user()[:100])
        run_ids = [r.run.id for r in requested]
        created = {r.run.id: r.created for r in requested}
    if not run_ids:
        if json:
            output.emit_json([])
        elif not quiet:
            output.say("no running accounts to sync")
        return
    if not wait:
        _report_requested(st, run_ids, created, json, quiet)
        return
    views, timed_out = _wait(st, run_ids, timeout, progress=not (json or quiet) and sys.stdout.isatty())
    _report_outcome(views, created, timed_out, timeout, json=json, quiet=quiet)


@app.command("list")
def list_(workspace: WorkspaceOption = None,
          account: Optional[str] = typer.Option(None, "--account", metavar="REF", help="Only this account's runs."),
          status: Optional[str] = typer.Option(None, "--status", help="queued, running, succeeded or failed."),
          limit: int = typer.Option(50, "--limit", "-n", min=1, max=1000, help="Most runs to show."),
          config: ConfigOption = None, json: JsonOption = False) -> None:
    """List sync runs, newest first.

    Example: blazzctl sync list --workspace acme --status failed
    """
    from blazzctl import views_sync
    from blazzctl.services import refs, sync

    with state(config).db.session() as session:
        acc = refs.account(session, account, workspace_ref=workspace) if account else None
        ws = refs.workspace(session, workspace) if workspace and acc is None else None
        rows = [views_sync.sync_run(r, a) for r, a in sync.list_runs(session, account=acc, workspace=ws,
                                                                     status=status, limit=limit)]
    if json:
        output.emit_json(rows)
        return
    output.table(["ID", "ACCOUNT", "KIND", "STATUS", "PROGRESS", "REQUESTED", "FINISHED", "RESULT"],
                 ([r["id"], r["account"], r["kind"], r["status"], f"{r['progress_done']}/{r['progress_total']}",
                   r["requested_at"], r["finished_at"], r["error"] or _totals(r["totals"])] for r in rows),
                 empty="no sync runs: blazzctl sync run REF")


# --- waiting and reporting ----------------------------------------------------------------------


def _fetch(st, run_ids: list[int]) -> list[dict]:
    from blazzctl import views_sync
    from blazzctl.models import WhatsAppAccount
    from blazzctl.services import sync

    with st.db.session() as session:
        return [views_sync.sync_run(r, session.get(WhatsAppAccount, r.whatsapp_account_id))
                for r in sync.get_runs(session, run_ids)]


def _wait(st, run_ids: list[int], timeout: float, *, progress: bool) -> tuple[list[dict], bool]:
    """Poll the runs until all finished or the timeout; returns (views, timed out)."""
    deadline = time.monotonic() + timeout
    bar = _Bar(len(run_ids)) if progress else None
    keep_running()
    try:
        while True:
            views = _fetch(st, run_ids)
            if bar is not None:
                bar.update(views)
            if all(v["status"] in ("succeeded", "failed") for v in views):
                return views, False
            if time.monotonic() >= deadline:
                return views, True
            time.sleep(min(POLL, max(0.0, deadline - time.monotonic())))
    finally:
        if bar is not None:
            bar.close()


class _Bar:
    """One progress bar over all runs: finished runs count whole, running ones by their progress."""

    def __init__(self, runs: int) -> None:
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self.progress = Progress(TextColumn("syncing"), BarColumn(), TextColumn("{task.fields[text]}"),
                                 TimeElapsedColumn(), transient=True)
        self.task = self.progress.add_task("sync", total=runs, text="")
        self.progress.start()

    def update(self, views: list[dict]) -> None:
        finished = sum(1 for v in views if v["status"] in ("succeeded", "failed"))
        partial = sum(v["progress_done"] / v["progress_total"] for v in views
                      if v["status"] == "running" and v["progress_total"])
        self.progress.update(self.task, completed=finished + partial,
                             text=f"{finished}/{len(views)} accounts done")

    def close(self) -> None:
        self.progress.stop()


def _report_requested(st, run_ids: list[int], created: dict[int, bool], json: bool, quiet: bool) -> None:
    views = _fetch(st, run_ids)
    if json:
        output.emit_json([{**v, "created": created[v["id"]]} for v in views])
        return
    if quiet:
        return
    new = [v for v in views if created[v["id"]]]
    old = [v for v in views if not created[v["id"]]]
    if new:
        output.say(f"queued a sync of {len(new)} account(s): run(s) {', '.join(str(v['id']) for v in new)}")
    for v in old:
        output.say(f"{v['account']}: run {v['id']} is {v['status']} already; not queued twice")
    output.say("watch them with `blazzctl sync list`")


def _report_outcome(views: list[dict], created: dict[int, bool], timed_out: bool, timeout: float, *,
                    json: bool, quiet: bool) -> None:
    bad = [v for v in views if v["status"] != "succeeded"]
    if json:
        output.emit_json([{**v, "created": created[v["id"]],
                           "timed_out": timed_out and v["status"] in ("queued", "running")} for v in views])
    elif not quiet:
        for v in views:
            output.say(_line(v, timeout))
    if bad:
        details = "" if not (quiet or json) else "\n  " + "\n  ".join(_line(v, timeout) for v in bad)
        raise OperationFailed(f"{len(bad)} of {len(views)} sync run(s) did not succeed"
                              f"{': ' + ', '.join(v['account'] for v in bad) if not details else ':'}{details}",
                              hint="See `blazzctl sync list` and the daemons' logs "
                                   "(journalctl -u 'blazz-session@*').")


def _line(v: dict, timeout: float) -> str:
    if v["status"] == "succeeded":
        return f"{v['account']}: succeeded: {_totals(v['totals'])}"
    if v["status"] == "failed":
        return f"{v['account']}: failed: {v['error']}"
    where = f", {v['progress_done']}/{v['progress_total']}" if v["status"] == "running" else \
        " (is a session daemon running and is the account connected?)"
    return f"{v['account']}: timed out after {timeout:g} s: still {v['status']}{where}"


def _totals(totals: dict | None) -> str:
    if not totals:
        return "-"
    return (f"{totals.get('chats', 0)} chats ({totals.get('private_chats', 0)} private, "
            f"{totals.get('group_chats', 0)} group), {totals.get('contacts', 0)} contacts, "
            f"{totals.get('groups', 0)} groups, {totals.get('participants', 0)} participants")
