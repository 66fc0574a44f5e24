"""`blazzctl account connect|disconnect|reconnect|logout`: operator intent, carried out by daemons."""

from __future__ import annotations

import time
from typing import Optional

import typer

from blazzctl.cli import output
from blazzctl.cli.context import ConfigOption, JsonOption, RefArgument, WorkspaceOption, keep_running, state
from blazzctl.errors import OperationFailed

WaitOption = typer.Option(True, "--wait/--no-wait", help="Wait for the outcome (default) or return at once.")
TimeoutOption = typer.Option(180.0, "--timeout", min=1, help="Seconds to wait for the outcome.")


def connect(ref: RefArgument, workspace: WorkspaceOption = None, wait: bool = WaitOption,
            timeout: float = TimeoutOption,
            pair_phone: Optional[str] = typer.Option(None, "--pair-phone", metavar="PHONE",
                                                     help="Log in with an 8-character pairing code for this "
                                                          "phone number instead of a QR."),
            config: ConfigOption = None, json: JsonOption = False) -> None:
    """Bring an account online: a session daemon claims it and logs in (QR or restored login).

    Example: blazzctl account connect sales --workspace acme --timeout 300
    """
    _request("connect", ref, workspace, wait, timeout, config, json, pair_phone=pair_phone)


def disconnect(ref: RefArgument, workspace: WorkspaceOption = None, wait: bool = WaitOption,
               timeout: float = typer.Option(60.0, "--timeout", min=1, help="Seconds to wait."),
               config: ConfigOption = None, json: JsonOption = False) -> None:
    """Close an account's session and keep its login (connect brings it back without a QR).

    Example: blazzctl account disconnect sales --workspace acme
    """
    _request("disconnect", ref, workspace, wait, timeout, config, json)


def reconnect(ref: RefArgument, workspace: WorkspaceOption = None, wait: bool = WaitOption,
              timeout: float = TimeoutOption, config: ConfigOption = None, json: JsonOption = False) -> None:
    """Restart an account's session (keeping its login).

    Example: blazzctl account reconnect sales --workspace acme
    """
    _request("reconnect", ref, workspace, wait, timeout, config, json)


def logout(ref: RefArgument, workspace: WorkspaceOption = None, wait: bool = WaitOption,
           timeout: float = typer.Option(60.0, "--timeout", min=1, help="Seconds to wait."),
           config: ConfigOption = None, json: JsonOption = False) -> None:
    """Unlink an account from its phone: the login is deleted, the status becomes logged_out.

    With no session running, WhatsApp cannot be told: every saved login is deleted instead, and
    the phone lists the device until it is removed there (Linked devices).

    Example: blazzctl account logout sales --workspace acme
    """
    _request("logout", ref, workspace, wait, timeout, config, json)


LOGIN_KINDS = ("connect", "reconnect")  # the commands whose wait shows QR and pairing codes


def _request(kind: str, ref: str, workspace: str | None, wait: bool, timeout: float, config: str | None,
             json: bool, pair_phone: str | None = None, *, display=None,
             timeout_hint: str | None = None) -> None:
    """Ask for ``kind`` and, with ``wait``, follow it on ``display`` (default: a line per change).
    ``timeout_hint``: what to say when the wait gives up (default: the login goes on, how to stop it)."""
    from blazzctl import views
    from blazzctl.enums import CommandKind
    from blazzctl.services import commands, refs

    st = state(config)
    with st.db.session() as session:
        account = refs.account(session, ref, workspace_ref=workspace)
        command = commands.request(session, account=account, kind=CommandKind(kind), pair_phone=pair_phone,
                                   state_dir=st.settings.daemon.state_dir, deadline_s=timeout if wait else None)
        command_id, account_id = command.id, account.id
    if json:
        display = None
    elif display is None:
        display = Lines(codes=kind in LOGIN_KINDS)
    outcome, timed_out = _watch(st, command_id, timeout, display) if wait else (None, False)
    with st.db.session() as session:
        view = views.account(refs.account(session, str(account_id)))
    if json:
        output.emit_json({**view, "command": {"id": command_id, "kind": kind,
                                              "status": str(outcome.command_status) if outcome else "pending",
                                              "result": outcome.result if outcome else None}})
    elif not wait:
        output.say(f"{kind} requested for {view['name']} (command {command_id}); "
                   f"watch it with `blazzctl account show {view['id']}`")
    if outcome is not None and str(outcome.command_status) != "succeeded":
        reason = outcome.result or outcome.last_error or str(outcome.account_status)
        hint = "See `blazzctl account show` and the daemon's log (journalctl -u 'blazz-session@*')."
        if timed_out and kind in LOGIN_KINDS:
            hint = timeout_hint or _still_waiting_hint(view, outcome)
        raise OperationFailed(f"{kind} of {view['name']} did not succeed: {reason}", hint=hint)
    if outcome is not None and not json:
        phone = f" as {view['phone_number']}" if kind in LOGIN_KINDS and view["phone_number"] else ""
        output.say(f"{view['name']}: {view['status']}{phone}")


def _still_waiting_hint(view: dict, outcome) -> str:
    """Only this command gave up: the account is still wanted online, so its login goes on."""
    import shlex

    ref = f"{shlex.quote(view['name'])} --workspace {shlex.quote(view['workspace'])}"
    if outcome.live_daemons == 0:
        waiting = "No session daemon is running; when one starts, it starts this login."
    elif outcome.pairing_code:
        waiting = f"The login keeps waiting: the pairing code stays valid until it expires (see it with " \
                  f"`blazzctl account show {ref}`)."
    else:
        waiting = f"The login keeps waiting: the session daemon keeps showing new QR codes (see the current " \
                  f"one with `blazzctl account qr {ref}`) until a phone links."
    return f"{waiting} To stop it: blazzctl account disconnect {ref}"


def _watch(st, command_id: int, timeout: float, display):
    """Poll the command until it finishes, showing each change on ``display`` (None: nothing).

    Returns (the last progress, whether this wait gave up at ``timeout``)."""
    from blazzctl.services import commands

    deadline = time.monotonic() + timeout
    grace_until = time.monotonic() + 10  # a daemon started just now needs a moment to register
    interval = st.settings.daemon.heartbeat_interval
    try:
        return _poll(st, command_id, deadline, grace_until, interval, timeout, display)
    except KeyboardInterrupt:
        # The operator stopped waiting: the command ends here (a later daemon must not act on
        # it, e.g. reuse its pairing phone); the account stays wanted online, as asked.
        with st.db.session() as session:
            commands.cancel(session, command_id=command_id, reason="interrupted")
        raise


RECOVER_EVERY = 2.0  # seconds between looks for a daemon that died running the command


def _poll(st, command_id: int, deadline: float, grace_until: float, interval: float, timeout: float, display):
    from blazzctl.services import commands

    warned = False
    next_recover = time.monotonic() + RECOVER_EVERY
    keep_running()
    while True:
        with st.db.session() as session:
            now = commands.progress(session, command_id=command_id, heartbeat_interval=interval)
            if now.command_status == "running" and time.monotonic() >= next_recover:
                # The daemon running it may be gone: then the command goes back to pending for the
                # account's next owner, or ends here (a wait never hangs on a dead daemon).
                next_recover = time.monotonic() + RECOVER_EVERY
                done = commands.recover(session, command_id=command_id, state_dir=st.settings.daemon.state_dir)
                if done is not None:
                    now = commands.progress(session, command_id=command_id, heartbeat_interval=interval)
        if display is not None:
            display.update(now)
            if now.live_daemons == 0 and not warned and not now.done and time.monotonic() > grace_until:
                warned = True
                output.warn("warning: no session daemon is running; start one with `blazzctl daemon run` "
                            "or `systemctl start blazz.target`")
        if now.done:
            return now, False
        if time.monotonic() > deadline:
            with st.db.session() as session:
                commands.cancel(session, command_id=command_id, reason=f"timed out after {timeout:g} s")
                return commands.progress(session, command_id=command_id, heartbeat_interval=interval), True
        time.sleep(0.5)


class Lines:
    """Plain output for a wait: a line for each change of status, and the QR or pairing code
    each time a new one comes when ``codes`` (a login). Readable in a pipe, a log or a test."""

    def __init__(self, *, codes: bool) -> None:
        self.codes, self.shown, self.note = codes, None, None

    def update(self, now) -> None:
        key = (now.account_status, now.status_reason) + ((now.qr_code, now.pairing_code) if self.codes else ())
        if key != self.shown:
            self.shown = key
            _show(now, codes=self.codes)
        if now.command_status == "pending" and now.result and now.result != self.note:
            self.note = now.result  # requeued: the daemon that took it stopped or lost the account
            output.say(f"command {now.result}")


def _show(now, *, codes: bool) -> None:
    line = f"status: {now.account_status}"
    if now.status_reason:
        line += f" ({now.status_reason})"
    output.say(line)
    if not codes:  # disconnect or logout of a login in progress: its codes are not for scanning now
        return
    if now.pairing_code:
        output.say(f"pairing code: {now.pairing_code}  (WhatsApp > Linked devices > Link with phone number)")
    elif now.qr_code:
        from blazzctl.cli import qr

        qr.show(now.qr_code, now.qr_expires_at)


def qr(ref: RefArgument, workspace: WorkspaceOption = None,
       png: Optional[str] = typer.Option(None, "--png", metavar="FILE", help="Save the QR as a PNG image."),
       config: ConfigOption = None, json: JsonOption = False) -> None:
    """Print (or save) the account's current login QR code.

    Example: blazzctl account qr sales --workspace acme --png /tmp/qr.png
    """
    from blazzctl import views
    from blazzctl.cli import qr as qr_render
    from blazzctl.services import refs

    with state(config).db.session() as session:
        account = refs.account(session, ref, workspace_ref=workspace)
        code, expires, status, name = account.qr_code, account.qr_expires_at, account.status, account.name
    if not code:
        raise OperationFailed(f"account {name!r} has no QR code now (status {status})",
                              hint="Start a login with `blazzctl account connect`.")
    if png:
        import segno

        try:
            segno.make(code, error="l", micro=False).save(png, scale=8, border=4)
        except OSError as exc:
            raise OperationFailed(f"cannot write {png}: {exc.strerror}") from None
    if json:
        output.emit_json({"qr": code, "expires_at": views.iso(expires)})
    elif png:
        output.say(f"saved {png}")
    else:
        qr_render.show(code, expires)
