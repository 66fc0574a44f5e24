"""`blazzctl top`: a live view of the fleet (daemons, accounts by status, queues, webhook backlog)."""

from __future__ import annotations

import os
import sys
import time

import typer

from blazzctl.cli import output
from blazzctl.cli.context import ConfigOption, JsonOption, keep_running, state

QUIT_KEYS = (b"q", b"Q")


def top(config: ConfigOption = None, json: JsonOption = False,
        once: bool = typer.Option(False, "--once", help="Print one snapshot and exit (also when stdout is "
                                                         "not a terminal)."),
        interval: float = typer.Option(1.0, "--interval", min=0.2, max=3600, metavar="S",
                                       help="Seconds between refreshes.")) -> None:
    """Watch daemons, accounts by status, queues and the webhook backlog; q or Ctrl-C quits.

    Example: blazzctl top
    """
    from blazzctl.services import overview

    st = state(config)

    def snapshot():
        with st.db.session() as session:
            return overview.snapshot(session, heartbeat_interval=st.settings.daemon.heartbeat_interval)

    if json:
        output.emit_json(overview.as_dict(snapshot()))
        return
    if once or not sys.stdout.isatty():
        from rich.console import Console

        width = None if sys.stdout.isatty() else 160  # piped: wide enough never to fold a row
        Console(highlight=False, width=width).print(render(snapshot()))
        return
    keep_running()
    watch(snapshot, interval)


def watch(snapshot, interval: float) -> None:
    """Refresh every ``interval`` seconds until q (read from the terminal in cbreak mode) or Ctrl-C."""
    from rich.live import Live

    keys = _Keys()
    try:
        with keys, Live(render(snapshot(), live=True), screen=True, auto_refresh=False,
                        redirect_stderr=False) as live:
            while not keys.wait_for_quit(interval):
                try:
                    view = render(snapshot(), live=True)
                except Exception as exc:  # the database went away: say so, keep watching
                    view = _error(exc)
                live.update(view, refresh=True)
    except KeyboardInterrupt:  # Ctrl-C is the other way to quit: exit 0
        return


class _Keys:
    """Single key presses from the controlling terminal, without echo (cbreak mode)."""

    def __init__(self) -> None:
        self.fd = sys.stdin.fileno() if sys.stdin.isatty() else None
        self.saved = None

    def __enter__(self) -> "_Keys":
        if self.fd is not None:
            import termios
            import tty

            self.saved = termios.tcgetattr(self.fd)
            tty.setcbreak(self.fd)  # keeps ISIG: Ctrl-C still raises KeyboardInterrupt
        return self

    def __exit__(self, *exc) -> None:
        if self.saved is not None:
            import termios

            termios.tcsetattr(self.fd, termios.TCSADRAIN, self.saved)

    def wait_for_quit(self, seconds: float) -> bool:
        """Wait up to ``seconds``; True as soon as a quit key is pressed."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            if self.fd is None:
                time.sleep(left)
                return False
            import select

            ready, _, _ = select.select([self.fd], [], [], left)
            if ready:
                data = os.read(self.fd, 32)
                if not data or any(bytes([b]) in QUIT_KEYS for b in data):
                    return True  # q, or the terminal went away
        return False


def render(view, *, live: bool = False):
    """The whole screen as one Rich renderable (``live``: with the quit hint)."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    from blazzctl.views import iso

    alive = [d for d in view.daemons if d.live]
    total = sum(view.accounts.values())
    header = Text(f"blazz top  {iso(view.now)}  daemons {len(alive)} live  accounts {view.owned} owned "
                  f"of {total}" + ("   (q quits)" if live else ""), style="bold")
    daemons = Table("DAEMON", "STATUS", "HEARTBEAT", "ACCOUNTS", "RSS", "CPU", "VERSION", box=None,
                    header_style="bold", pad_edge=False, title="daemons", title_justify="left")
    for d in view.daemons:
        row = d.daemon
        status = str(row.status) + ("" if d.live else " (dead)")
        age = f"{d.heartbeat_age:.1f}s ago" if d.heartbeat_age is not None else "-"
        rss = f"{row.rss_bytes / 1048576:.0f} MB" if row.rss_bytes is not None else "-"
        cpu = f"{row.cpu_percent:.0f}%" if row.cpu_percent is not None else "-"
        daemons.add_row(*(Text(str(v)) for v in (row.name, status, age, row.accounts_owned, rss, cpu,
                                                   row.version or "-")))
    if not view.daemons:
        daemons.add_row(Text("no session daemons running"), *[Text("")] * 6)
    accounts = Table("STATUS", "ACCOUNTS", box=None, header_style="bold", pad_edge=False,
                     title="accounts", title_justify="left")
    for status, count in sorted(view.accounts.items(), key=lambda kv: (-kv[1], kv[0])):
        accounts.add_row(Text(status), Text(str(count)))
    if not view.accounts:
        accounts.add_row(Text("none"), Text("0"))
    q = view.queues
    oldest = "-" if q.webhooks_oldest_age is None else f"{q.webhooks_oldest_age:.0f}s"
    queues = Table("QUEUE", "WAITING", box=None, header_style="bold", pad_edge=False,
                   title="queues", title_justify="left")
    for name, value in (("messages pending", q.messages_pending), ("syncs queued", q.syncs_queued),
                        ("syncs running", q.syncs_running), ("webhooks pending", q.webhooks_pending),
                        ("oldest webhook", oldest), ("webhooks dead", q.webhooks_dead)):
        queues.add_row(Text(name), Text(str(value)))
    side = Table.grid(padding=(0, 6))
    side.add_row(accounts, queues)
    return Group(header, Text(""), daemons, Text(""), side)


def _error(exc: Exception):
    from rich.text import Text

    message = getattr(exc, "message", None) or str(exc).splitlines()[0][:200]
    return Text(f"blazz top  {time.strftime('%H:%M:%S')}  cannot read the database: {message}  (q quits)",
                style="bold red")
