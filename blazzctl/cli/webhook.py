"""`blazzctl webhook`: endpoints that receive a workspace's events, and their deliveries."""

from __future__ import annotations

import sys
from typing import Annotated, Optional

import typer

from blazzctl.cli import output
from blazzctl.cli.context import ConfigOption, JsonOption, WorkspaceOption, state
from blazzctl.errors import InvalidInput

app = typer.Typer(no_args_is_help=True, help="Add, list, update, remove and test webhooks; rotate their secrets; inspect and redeliver deliveries.")

IdArgument = Annotated[str, typer.Argument(metavar="ID", help="Webhook id (see `blazzctl webhook list`).")]
EndpointOption = Annotated[Optional[int], typer.Option("--endpoint", metavar="ID", help="Only this webhook's deliveries.")]


@app.command("add")
def add(url: str = typer.Argument(..., help="http(s) URL that receives the POSTs."),
        workspace: WorkspaceOption = None,
        events: Optional[str] = typer.Option(None, "--events", metavar="LIST",
                                             help="Comma-separated event types; default: every type."),
        secret: Optional[str] = typer.Option(None, "--secret", metavar="SECRET",
                                             help="whsec_ signing secret; default: a new random one."),
        config: ConfigOption = None, json: JsonOption = False) -> None:
    """Add a webhook to a workspace (one per URL). The signing secret is shown here and never again.

    Example: blazzctl webhook add --workspace acme https://hooks.example.com/blazz --events message.received,message.status
    """
    from blazzctl.services import refs, webhooks
    from blazzctl.webhooks import views

    if not workspace:
        raise InvalidInput("no workspace given", hint="Give --workspace WS (or set BLAZZ_WORKSPACE).")
    chosen = webhooks.parse_events(events)
    with state(config).db.session() as session:
        endpoint = webhooks.add(session, workspace=refs.workspace(session, workspace), url=url,
                                events=chosen, secret=secret)
        view = views.endpoint(endpoint, with_secret=True)
    if json:
        output.emit_json(view)
        return
    output.say(f"added webhook {view['id']} -> {view['url']}")
    output.say(f"signing secret (shown only now): {view['secret']}")


@app.command("list")
def list_(workspace: WorkspaceOption = None, config: ConfigOption = None, json: JsonOption = False) -> None:
    """List webhooks, of one workspace or of all.

    Example: blazzctl webhook list --workspace acme --json
    """
    from blazzctl.services import refs, webhooks
    from blazzctl.webhooks import views

    with state(config).db.session() as session:
        ws = refs.workspace(session, workspace) if workspace else None
        rows = [views.endpoint(ep) for ep in webhooks.list_endpoints(session, workspace=ws)]
    if json:
        output.emit_json(rows)
        return
    output.table(["ID", "WORKSPACE", "URL", "EVENTS", "ACTIVE"],
                 ([r["id"], r["workspace_id"], r["url"], ",".join(r["events"]) if r["events"] else "all",
                   "yes" if r["active"] else "no (disabled)"] for r in rows),
                 empty="no webhooks yet: blazzctl webhook add --workspace WS URL")


@app.command("remove")
def remove(endpoint_id: IdArgument,
           yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
           config: ConfigOption = None, json: JsonOption = False) -> None:
    """Remove a webhook and its delivery history.

    Example: blazzctl webhook remove 3 --yes
    """
    from blazzctl.services import webhooks
    from blazzctl.webhooks import views

    with state(config).db.session() as session:
        endpoint = webhooks.get(session, endpoint_id)
        if not yes:
            _confirm(f"Remove webhook {endpoint.id} -> {webhooks.shown_url(endpoint.url)} and its delivery history?")
        view = views.endpoint(endpoint)
        webhooks.remove(session, endpoint=endpoint)
    if json:
        output.emit_json(view)
    else:
        output.say(f"removed webhook {view['id']}")


@app.command("update")
def update(endpoint_id: IdArgument,
           url: Optional[str] = typer.Option(None, "--url", metavar="URL", help="New http(s) URL."),
           events: Optional[str] = typer.Option(None, "--events", metavar="LIST",
                                                help="Comma-separated event types (replaces the list)."),
           all_events: bool = typer.Option(False, "--all-events", help="Receive every event type again."),
           enable: Optional[bool] = typer.Option(None, "--enable/--disable",
                                                 help="Take events again / stop (pending deliveries become dead)."),
           config: ConfigOption = None, json: JsonOption = False) -> None:
    """Change a webhook's URL, event types, or whether it is enabled.

    Example: blazzctl webhook update 3 --url https://hooks.example.com/v2 --events message.received
    """
    from blazzctl.services import webhooks
    from blazzctl.webhooks import views

    if events is not None and all_events:
        raise InvalidInput("give either --events or --all-events, not both")
    chosen = webhooks.ALL_EVENTS if all_events else webhooks.parse_events(events)
    with state(config).db.session() as session:
        endpoint = webhooks.update(session, endpoint=webhooks.get(session, endpoint_id), url=url,
                                   events=chosen, active=enable)
        view = views.endpoint(endpoint)
    if json:
        output.emit_json(view)
        return
    events_text = ",".join(view["events"]) if view["events"] else "all"
    output.say(f"updated webhook {view['id']} -> {view['url']} (events: {events_text}; "
               f"{'enabled' if view['active'] else 'disabled'})")


@app.command("rotate-secret")
def rotate_secret(endpoint_id: IdArgument,
                  grace: Optional[float] = typer.Option(None, "--grace", metavar="SECONDS", min=0, max=30 * 86400,
                                                        help="How long the old secret keeps signing; "
                                                             "default: webhooks.rotation_grace; 0: stop now."),
                  secret: Optional[str] = typer.Option(None, "--secret", metavar="SECRET",
                                                       help="whsec_ signing secret; default: a new random one."),
                  config: ConfigOption = None, json: JsonOption = False) -> None:
    """Give a webhook a new signing secret, shown here and never again.

    Until the grace ends, each delivery carries two signatures (new and old secret), so the
    receiver can switch to the new secret without losing events.

    Example: blazzctl webhook rotate-secret 3
    """
    from blazzctl.services import webhooks
    from blazzctl.webhooks import views

    st = state(config)
    grace = st.settings.webhooks.rotation_grace if grace is None else grace
    with st.db.session() as session:
        endpoint = webhooks.rotate_secret(session, endpoint=webhooks.get(session, endpoint_id), grace=grace,
                                          secret=secret)
        view = views.endpoint(endpoint, with_secret=True)
    if json:
        output.emit_json(view)
        return
    output.say(f"new signing secret of webhook {view['id']} (shown only now): {view['secret']}")
    if view["previous_secret_expires_at"]:
        output.say(f"the old secret also signs until {view['previous_secret_expires_at']}")
    else:
        output.say("the old secret no longer signs")


@app.command("test")
def test(endpoint_id: IdArgument, config: ConfigOption = None, json: JsonOption = False) -> None:
    """Send a webhook.test event now and report the answer (exit 1 unless it was delivered).

    Example: blazzctl webhook test 3
    """
    from blazzctl.errors import OperationFailed
    from blazzctl.services import webhooks
    from blazzctl.webhooks import views

    st = state(config)
    delivery, outcome = webhooks.test(st.db, st.settings, endpoint_ref=endpoint_id)
    view = {**views.delivery(delivery), "duration_ms": outcome.duration_ms, "response": outcome.response}
    if json:
        output.emit_json(view)
    else:
        output.fields([("delivery", view["id"]), ("status", view["status"]),
                       ("http status", view["last_status_code"]), ("error", view["last_error"]),
                       ("duration", f"{outcome.duration_ms} ms"), ("response", outcome.response)])
    if view["status"] != "delivered":
        raise OperationFailed(f"webhook {endpoint_id} did not accept the test event",
                              hint="It stays queued and is retried on the schedule; see `blazzctl webhook deliveries`.")


@app.command("deliveries")
def deliveries(status: Optional[str] = typer.Option(None, "--status", help="pending, delivered or dead."),
               endpoint: EndpointOption = None,
               limit: int = typer.Option(50, "--limit", min=1, max=10000, help="Most rows shown (newest first)."),
               config: ConfigOption = None, json: JsonOption = False) -> None:
    """List deliveries, newest first.

    Example: blazzctl webhook deliveries --status dead --endpoint 3
    """
    from blazzctl.services import webhooks
    from blazzctl.webhooks import views

    with state(config).db.session() as session:
        rows = [views.delivery(d) for d in
                webhooks.list_deliveries(session, status=status, endpoint_id=endpoint, limit=limit)]
    if json:
        output.emit_json(rows)
        return
    output.table(["ID", "WEBHOOK", "TYPE", "STATUS", "ATTEMPTS", "LAST", "NEXT ATTEMPT", "CREATED"],
                 ([r["id"], r["endpoint_id"], r["type"], r["status"], r["attempts"],
                   r["last_status_code"] or r["last_error"], r["next_attempt_at"] if r["status"] == "pending" else None,
                   r["created_at"]] for r in rows), empty="no deliveries")


@app.command("redeliver")
def redeliver(delivery_id: Optional[int] = typer.Argument(None, metavar="DELIVERY_ID", help="One delivery."),
              dead: bool = typer.Option(False, "--dead", help="Every dead delivery (of --endpoint when given)."),
              endpoint: EndpointOption = None,
              config: ConfigOption = None, json: JsonOption = False) -> None:
    """Queue deliveries again, from a first attempt (re-enables a disabled webhook).

    Example: blazzctl webhook redeliver --dead --endpoint 3
    """
    from blazzctl.services import webhooks

    if delivery_id is not None and (dead or endpoint is not None):
        raise InvalidInput("give either a delivery id or --dead [--endpoint ID], not both")
    with state(config).db.session() as session:
        ids = webhooks.redeliver(session, delivery_id=delivery_id, dead=dead, endpoint_id=endpoint)
    if json:
        output.emit_json({"redelivered": len(ids), "ids": ids})
    else:
        output.say(f"queued {len(ids)} deliver{'y' if len(ids) == 1 else 'ies'} again")


def _confirm(question: str) -> None:
    """Ask on the terminal, as `account remove` does; without one, --yes is needed.

    The question goes to stderr, so stdout holds only the JSON under --json.
    """
    if not sys.stdin.isatty():
        raise InvalidInput("confirmation needed, and there is no terminal to ask on", hint="Add --yes.")
    if not typer.confirm(question, default=False, err=True):
        raise InvalidInput("not confirmed; nothing was changed")
