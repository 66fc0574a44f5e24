"""Chromium memory per WhatsApp session, ours vs a whatsapp-web.js-style launch, and restore time.

    python3 bench/browser_memory.py --sessions K [--per-browser 8] [--json] [--settle 15] [--no-docs]

On the fake WhatsApp Web (``tests/fakes/wa_web``), each account seeded with a realistic weight
(1000 chats, 300 extra contacts, 20 groups, 2 messages per chat, 8 MB of script heap):

1. **ours**: a real session daemon (``python -m daemons.session``, the built-in ``webjs`` provider,
   its launch flags, ``providers.webjs.accounts_per_browser`` = ``--per-browser``: by default
   pooled, several accounts per Chromium) connects K accounts one after the other (QR linked
   through the fake's control API). PSS of the daemon's Chromium processes (psutil ``memory_full_info().pss``) is
   taken after the first session and after the K-th, each after ``--settle`` seconds:
   marginal per session = (PSS_K - PSS_1) / (K - 1); also PSS_K / K.
   Then the daemon and its browsers are SIGKILLed and a daemon on another "host" (its own state
   directory, the same session key) restores every login from the database: time from its
   claim of an account to ``connected`` (per account; median and max). Then one of that
   daemon's browsers is SIGKILLed: time until all of its accounts are connected again. Last,
   one account at a time: daemons of capacity 1 on new hosts each claim one account of the one
   before (killed) and restore it with nothing else loading.
2. **theirs**: the same K accounts' pages launched the way whatsapp-web.js launches them (one
   Chromium per client, Puppeteer 24's default flags, headless=new, ``defaultViewport: null``,
   its ``--user-agent``/``--disable-blink-features=AutomationControlled``, and the README's
   ``--no-sandbox --disable-setuid-sandbox``), driven by Playwright with ``ignore_default_args``
   so that only those flags are used. The same bridge script is injected (equal in-page work;
   wwebjs's own injected utilities are heavier, so this flatters "theirs" if anything).
   Same PSS measurements; "restore" is relaunching each client on its own profile (LocalAuth).

Prints both and the ratio ours/theirs of the marginal PSS per session; appends the figures and
flags to docs/benchmarks.md (unless --no-docs). Targets (issue 4): ratio <= 0.6; restore <= 10 s median.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import psutil  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
ONE_AT_A_TIME = 5  # single-account handovers measured after the K-at-once restore
SEED = {"chats": 1000, "contacts": 300, "groups": 20, "participants": 5, "messages_per_chat": 2, "heap_mb": 8}
USER_AGENT = ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_14_6) AppleWebKit/537.36 (KHTML, like Gecko) "
              "Chrome/101.0.4951.67 Safari/537.36")  # whatsapp-web.js's default
# Puppeteer 24 ChromeLauncher.defaultArgs (headless, no extensions), as whatsapp-web.js gets them.
PUPPETEER_DEFAULT_ARGS = [
    "--allow-pre-commit-input", "--disable-background-networking", "--disable-background-timer-throttling",
    "--disable-backgrounding-occluded-windows", "--disable-breakpad", "--disable-client-side-phishing-detection",
    "--disable-component-extensions-with-background-pages", "--disable-crash-reporter", "--disable-default-apps",
    "--disable-dev-shm-usage", "--disable-hang-monitor", "--disable-infobars", "--disable-ipc-flooding-protection",
    "--disable-popup-blocking", "--disable-prompt-on-repost", "--disable-renderer-backgrounding",
    "--disable-search-engine-choice-screen", "--disable-sync", "--enable-automation", "--export-tagged-pdf",
    "--force-color-profile=srgb", "--generate-pdf-document-outline", "--metrics-recording-only", "--no-first-run",
    "--password-store=basic", "--use-mock-keychain",
    "--disable-features=Translate,AcceptCHFrame,MediaRouter,OptimizationHints,WebUIReloadButton,"
    "WebUIOmniboxPopup,WebUIOmniboxAimPopup,ProcessPerSiteUpToMainFrameThreshold,IsolateSandboxedIframes",
    "--enable-features=PdfOopif", "--headless=new", "--hide-scrollbars", "--mute-audio", "--disable-extensions",
]
WWEBJS_ARGS = ["--no-sandbox", "--disable-setuid-sandbox", f"--user-agent={USER_AGENT}",
               "--disable-blink-features=AutomationControlled"]


# --- memory -------------------------------------------------------------------------------------------

def chromium_processes(root_pid: int) -> list[psutil.Process]:
    out = []
    try:
        procs = psutil.Process(root_pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return out
    for proc in procs:
        try:
            exe = proc.cmdline()[0] if proc.cmdline() else proc.name()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        if "chrom" in os.path.basename(exe):
            out.append(proc)
    return out


FOREIGN = [0]  # most Chromium processes of other programs seen at a reading (they lower our PSS of shared pages)


def foreign_chromium(mine: set[int]) -> int:
    count = 0
    for proc in psutil.process_iter(["name", "cmdline"]):
        cmd = proc.info.get("cmdline") or [proc.info.get("name") or ""]
        if proc.pid not in mine and cmd and "chrom" in os.path.basename(cmd[0]):
            count += 1
    return count


def tree_pss(root_pid: int) -> tuple[int, int]:
    """(PSS bytes, process count) of the Chromium processes below ``root_pid``."""
    FOREIGN[0] = max(FOREIGN[0], foreign_chromium({p.pid for p in chromium_processes(root_pid)}))
    total, count = 0, 0
    for proc in chromium_processes(root_pid):
        try:
            total += proc.memory_full_info().pss
            count += 1
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return total, count


def mb(value: float) -> float:
    return round(value / 2**20, 1)


# --- ours: real daemons --------------------------------------------------------------------------------

class Poller:
    """One thread reading every account's (status, owner) each 50 ms, with the time of each change."""

    def __init__(self, db, ids: list[int]) -> None:
        self.db, self.ids = db, ids
        self.changes: dict[int, list[tuple[float, str, str | None]]] = {i: [] for i in ids}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        from sqlalchemy import select

        from blazzctl.models import WhatsAppAccount as A

        while not self._stop.is_set():
            try:
                with self.db.session() as s:
                    rows = s.execute(select(A.id, A.status, A.owner).where(A.id.in_(self.ids))).all()
            except Exception:  # noqa: BLE001 - a busy SQLite file
                rows = []
            now = time.monotonic()
            for r in rows:
                seen = self.changes[r.id]
                if not seen or seen[-1][1:] != (str(r.status), r.owner):
                    seen.append((now, str(r.status), r.owner))
            self._stop.wait(0.05)

    def __enter__(self) -> "Poller":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(5)

    def left_after(self, account_id: int, owner: str, since: float) -> bool:
        return any(t >= since and who == owner and status != "connected"
                   for t, status, who in self.changes[account_id])

    def back_after(self, account_id: int, owner: str, since: float) -> float | None:
        """Seconds from ``since`` until the account, having left ``connected``, is connected again."""
        left = False
        for t, status, who in self.changes[account_id]:
            if t < since or who != owner:
                continue
            if status != "connected":
                left = True
            elif left:
                return t - since
        return None

    def restore_time(self, account_id: int, owner: str) -> float | None:
        """Seconds from ``owner``'s claim of the account to its ``connected`` (after its own start)."""
        claimed = started = None
        for t, status, who in self.changes[account_id]:
            if who != owner:
                continue
            claimed = claimed if claimed is not None else t
            if status == "starting":
                started = t
            elif started is not None and status == "connected":
                return t - claimed
        return None


def wait(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise SystemExit(f"timed out after {timeout:g} s waiting for {what}")


def run_ours(fake, k: int, settle: float, root: Path, per_browser: int) -> dict:
    from blazzctl.db import Database
    from blazzctl.enums import CommandKind
    from blazzctl.models import WhatsAppAccount
    from blazzctl.providers.webjs.provider import BASE_FLAGS, DISABLED_FEATURES, HEADLESS_FLAGS
    from blazzctl.services import accounts, commands, workspaces
    from tests.daemon_helpers import migrate
    from tests.webjs_helpers import WebjsFleet, account_row, wait_qr

    root.mkdir(parents=True, exist_ok=True)  # blazz creates database directories only under its state dir
    url = f"sqlite:///{root / 'blazz.db'}"
    migrate(url)
    db = Database(url)
    key = root / "session.key"
    from blazzctl import keys
    keys.generate(key)
    with db.session() as s:
        ws = workspaces.create(s, name="bench")
        made = [accounts.add(s, workspace=ws, name=f"ours-{i}") for i in range(k)]
        s.flush()
        ids = [a.id for a in made]
    fleet = WebjsFleet(root / "fleet", url, fake.url, key_file=key,
                       daemon={"capacity": max(k, 1), "start_stagger": 0.0, "lease_ttl": 6.0},
                       webjs={"checkpoint_interval": 300, "start_timeout": 60,
                              "accounts_per_browser": per_browser})
    out: dict = {"flags": [*BASE_FLAGS, *HEADLESS_FLAGS, "--no-sandbox",
                           "--disable-features=" + ",".join(DISABLED_FEATURES)]}
    try:
        first = fleet.start(1, host="host-a")
        for n, account_id in enumerate(ids, 1):
            with db.session() as s:
                commands.request(s, account=s.get(WhatsAppAccount, account_id), kind=CommandKind.CONNECT)
            qr = wait_qr(db, account_id, 90)
            fake.link(qr, phone_of("1", n))
            wait(lambda: account_row(db, account_id)["status"] == "connected", 90, f"ours account {n} connected")
            if n == 1 or n == k:
                time.sleep(settle)
                pss, procs = tree_pss(first.pid)
                out[f"pss_{'1' if n == 1 else 'k'}"] = pss
                out[f"procs_{'1' if n == 1 else 'k'}"] = procs
        # Every login archived (5 s after ready), then the host dies and another restores them all.
        wait(lambda: all(account_row(db, a)["auth_saved_at"] for a in ids), 60, "every login archived")
        with Poller(db, ids) as poller:
            fleet.kill(first)
            second = fleet.start(1, host="host-b")
            wait(lambda: all(poller.restore_time(a, second.name) is not None for a in ids), 180,
                 "every account restored on host-b")
            out["restore_s"] = [round(poller.restore_time(a, second.name), 2) for a in ids]
            # One of host-b's browsers dies: how long until all of its accounts are connected again.
            killed = time.monotonic()
            victim = kill_a_browser(second.pid)
            time.sleep(3.0)  # its accounts notice (their pages are gone) and leave `connected`
            hit = [a for a in ids if poller.left_after(a, second.name, killed)]
            wait(lambda: all(poller.back_after(a, second.name, killed) is not None for a in hit), 180,
                 "the killed browser's accounts connected again")
            times = [poller.back_after(a, second.name, killed) for a in hit]
            out["browser_kill"] = {"pid": victim, "accounts": len(hit), "all_back_s": round(max(times or [0]), 2)}
            # One account at a time: a daemon of capacity 1 on a new host claims one account of a
            # killed daemon and restores it alone (no other page loading on the machine).
            fleet.kill(second)
            fleet.daemon_settings = {**fleet.daemon_settings, "capacity": 1}
            out["restore_one_s"], previous, hosts = [], None, [second.name]
            for n in range(ONE_AT_A_TIME):
                if previous is not None:
                    fleet.kill(previous)
                previous = fleet.start(1, host=f"host-c{n}")
                hosts.append(previous.name)
                wait(lambda: any(poller.restore_time(a, previous.name) is not None for a in ids), 60,
                     f"one account restored on host-c{n}")
                out["restore_one_s"] += [round(t, 2) for a in ids
                                         if (t := poller.restore_time(a, previous.name)) is not None]
        out["qr_after_restore"] = sum(1 for a in ids for _t, st, who in poller.changes[a]
                                      if who in hosts and st == "qr_scanning")
    finally:
        fleet.close()
        db.dispose()
    return out


def kill_a_browser(daemon_pid: int) -> int:
    """SIGKILL the first browser process below the daemon (not one of its helpers: no --type=)."""
    import signal

    for proc in chromium_processes(daemon_pid):
        if not any(a.startswith("--type=") for a in proc.cmdline()):
            os.kill(proc.pid, signal.SIGKILL)
            return proc.pid
    raise SystemExit("no browser process below the daemon")


def phone_of(side: str, n: int) -> str:
    return f"+49155{side}{n:05d}"


# --- theirs: whatsapp-web.js-style launches --------------------------------------------------------------

CONNECTED_JS = """() => { try { const S = window.require('WAWebSocketModel').Socket;
  return S.state === 'CONNECTED' && S.hasSynced === true; } catch (e) { return false; } }"""


async def _launch_theirs(pw, profile: Path):
    from blazzctl.providers.webjs.session import BRIDGE

    args = PUPPETEER_DEFAULT_ARGS + WWEBJS_ARGS + [f"--user-data-dir={profile}", "--remote-debugging-pipe",
                                                   "about:blank"]
    context = await pw.chromium.launch_persistent_context(
        str(profile), executable_path=CHROMIUM, headless=True, ignore_default_args=True, args=args,
        no_viewport=True, user_agent=USER_AGENT, timeout=60_000)
    await context.add_init_script("window.__blazzOptions = {};")
    await context.add_init_script(BRIDGE)
    await context.expose_binding("blazzEmit", lambda *_a: None)
    page = context.pages[0] if context.pages else await context.new_page()
    return context, page


async def _until(page, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if await page.evaluate(CONNECTED_JS):
                return
        except Exception:  # noqa: BLE001 - navigating
            pass
        await asyncio.sleep(0.1)
    raise SystemExit("a whatsapp-web.js-style client did not connect")


async def run_theirs_async(fake, k: int, settle: float, root: Path) -> dict:
    from playwright.async_api import async_playwright

    out: dict = {"flags": PUPPETEER_DEFAULT_ARGS + WWEBJS_ARGS}
    me = os.getpid()
    async with async_playwright() as pw:
        clients = []
        try:
            for n in range(1, k + 1):
                profile = root / "wwebjs" / f"session-{n}"
                before = set(fake.waiting_qrs())
                context, page = await _launch_theirs(pw, profile)
                clients.append((context, page, profile))
                await page.goto(fake.url, wait_until="load", timeout=60_000, referer="https://whatsapp.com/")
                deadline = time.monotonic() + 60
                qr = None
                while qr is None and time.monotonic() < deadline:
                    fresh = [q for q in fake.waiting_qrs() if q not in before]
                    qr = fresh[0] if fresh else None
                    await asyncio.sleep(0.1)
                if qr is None:
                    raise SystemExit("no QR from a whatsapp-web.js-style client")
                fake.link(qr, phone_of("2", n))
                await _until(page, 90)
                if n == 1 or n == k:
                    await asyncio.sleep(settle)
                    pss, procs = tree_pss(me)
                    out[f"pss_{'1' if n == 1 else 'k'}"] = pss
                    out[f"procs_{'1' if n == 1 else 'k'}"] = procs
            # "Restore": LocalAuth relaunches each client on its own profile.
            for context, _page, _profile in clients:
                await context.close()
            profiles = [profile for _c, _p, profile in clients]
            clients = []

            async def relaunch(profile: Path) -> float:
                started = time.monotonic()
                context, page = await _launch_theirs(pw, profile)
                clients.append((context, page, profile))
                await page.goto(fake.url, wait_until="load", timeout=60_000, referer="https://whatsapp.com/")
                await _until(page, 90)
                return round(time.monotonic() - started, 2)

            out["restore_s"] = list(await asyncio.gather(*(relaunch(p) for p in profiles)))
        finally:
            for context, _page, _profile in clients:
                try:
                    await context.close()
                except Exception:  # noqa: BLE001
                    pass
    return out


# --- report --------------------------------------------------------------------------------------------

def summarise(side: dict, k: int) -> dict:
    marginal = (side["pss_k"] - side["pss_1"]) / (k - 1) if k > 1 else side["pss_k"]
    restore = side["restore_s"]
    return {"pss_1_mb": mb(side["pss_1"]), "pss_k_mb": mb(side["pss_k"]), "procs_1": side["procs_1"],
            "procs_k": side["procs_k"], "marginal_mb_per_session": mb(marginal),
            "mean_mb_per_session": mb(side["pss_k"] / k), "restore_median_s": round(statistics.median(restore), 2),
            "restore_max_s": max(restore), "restore_s": restore, "flags": side["flags"],
            **({"browser_kill": side["browser_kill"]} if "browser_kill" in side else {}),
            **({"restore_one_median_s": round(statistics.median(side["restore_one_s"]), 2),
                "restore_one_max_s": max(side["restore_one_s"]), "restore_one_s": side["restore_one_s"]}
               if side.get("restore_one_s") else {}),
            **({"qr_after_restore": side["qr_after_restore"]} if "qr_after_restore" in side else {})}


def chromium_version() -> str:
    import subprocess

    try:
        return subprocess.run([CHROMIUM, "--version"], capture_output=True, text=True, timeout=20).stdout.strip()
    except OSError:
        return "?"


def machine() -> str:
    mem = psutil.virtual_memory().total / 2**30
    return f"{platform.node()}: {os.cpu_count()} CPUs, {mem:.0f} GB RAM, {platform.platform()}, {chromium_version()}"


BEGIN, END = "<!-- bench:browser_memory -->", "<!-- /bench:browser_memory -->"

NOTES = """Levers tried (same fake page and seed; 2 sessions per variant, marginal PSS per session;
single runs on a shared machine, so differences below ~10 MB are noise):

- Chromium keeps only the **last** `--disable-features` switch: our extra one used to cancel
  Playwright's whole list. The provider now owns the entire command line (`ignore_default_args`)
  with one merged list (`launch_args` given in the config are merged into it).
- Disabling `WebUIOmniboxPopup`, `WebUIOmniboxAimPopup`, `WebUIReloadButton` (Puppeteer disables
  them too): the invisible browser UI of a headless Chromium otherwise loads WebUI pages into a
  renderer. 190 -> 151 MB per session. Adopted; no effect on the page.
- `--renderer-process-limit=1` (adopted earlier): one renderer per browser, -13 MB in one session.
- `--in-process-gpu`: one process fewer, no measurable marginal gain (153 MB). Not adopted.
- `--no-zygote` (with `--in-process-gpu`, before the WebUI change): 203 vs 191 MB, worse.
  `--disable-software-rasterizer`: 174 MB, noise or worse. Not adopted.
- `--js-flags=--lite-mode` (V8 without its optimizing compiler): 146 MB, about -5 MB, but slower
  JavaScript for the whole of WhatsApp Web. Not adopted.
- `--single-process`: 122 MB, but Chromium does not support it (a renderer crash takes the
  browser down, and Playwright may hang on it). Not adopted: stability first.

The levers above were all flags: with one Chromium per account on both sides the best stable
figure was about 1.0x (145 MB vs 148 MB per session, 2026-11-26), since the per-browser processes
(browser, zygote, network, storage and GPU processes) were paid once per account on both sides.
Pooled browsers (`providers.webjs.accounts_per_browser`, several accounts' contexts in one
Chromium, each login kept as a snapshot) pay them once per K accounts; the renderer side (script
heap, DOM: the page) is the same on both sides and is now most of ours.

Targets (issue 14): marginal PSS ratio <= 0.6, restore median <= 1.5 s, a killed browser's
accounts all connected again <= 15 s, no QR. The restore figure is claim -> connected for the
K accounts of a killed host, claimed together by one daemon and started at once on this 2-core
machine, each loading the seeded page (1000 chats, 8 MB of script heap), the first also waiting
for its browser to launch; the per-account times rise steadily with the order they started in,
so the median is the contention of K page loads on 2 cores rather than the restore itself
(writing the fake's snapshot into a context takes milliseconds: tests/test_login_snapshot.py).
Fewer accounts restored at once per daemon (a start stagger) or more cores bring the median
toward the first account's figure. The one-account figure is the same path with nothing else
loading: a daemon with capacity 1 claims one account of a killed daemon (claim -> browser launch ->
snapshot written -> app loaded -> synced). On the fake page that is about 1 s, of which about 0.7 s
is the app itself booting and syncing its 1000 chats; context, snapshot restore and navigation
take about 0.3 s (probe of the phases on this machine, 2026-12-04)."""


def write_docs(result: dict) -> Path:
    """Replace this bench's section of docs/benchmarks.md (between its markers), or append it."""
    path = REPO / "docs" / "benchmarks.md"
    ours, theirs = result["ours"], result["theirs"]
    kill = ours.get("browser_kill") or {"all_back_s": "-", "accounts": 0}
    k = result["sessions"]
    load = f"; load average at the start {result['load']}" if result.get("load") else ""
    lines = [
        BEGIN, "## Chromium memory per WhatsApp session, and restore time (`bench/browser_memory.py`)", "",
        f"Measured {result['date']} on {result['machine']}{load}.", "",
        f"- Command: `python3 bench/browser_memory.py --sessions {k} --per-browser {result['per_browser']} "
        f"--settle {result['settle_s']:g}` (settle: seconds before each PSS reading; ours with "
        f"`providers.webjs.accounts_per_browser: {result['per_browser']}`)",
        "- Page: the fake WhatsApp Web, each account seeded with "
        + ", ".join(f"{key} {value}" for key, value in SEED.items()),
        "- PSS: sum of `memory_full_info().pss` over the Chromium processes of one side "
        "(ours: below the session daemon; theirs: below the bench's Playwright driver). "
        "Marginal = (PSS after K sessions - PSS after 1) / (K - 1). Other programs' Chromium processes "
        f"running at a reading (they share library pages, lowering PSS): up to {result['foreign_chromium_processes_max']}.",
        "",
        "| | ours (blazz daemon) | whatsapp-web.js-style |", "|---|---|---|",
        f"| PSS, 1 session | {ours['pss_1_mb']} MB ({ours['procs_1']} processes) | "
        f"{theirs['pss_1_mb']} MB ({theirs['procs_1']} processes) |",
        f"| PSS, {k} sessions | {ours['pss_k_mb']} MB ({ours['procs_k']} processes) | "
        f"{theirs['pss_k_mb']} MB ({theirs['procs_k']} processes) |",
        f"| marginal PSS per session | **{ours['marginal_mb_per_session']} MB** | "
        f"**{theirs['marginal_mb_per_session']} MB** |",
        f"| PSS_K / K | {ours['mean_mb_per_session']} MB | {theirs['mean_mb_per_session']} MB |",
        f"| restore to connected, median (max) | {ours['restore_median_s']} s ({ours['restore_max_s']} s): claim on "
        f"another host -> connected, login restored from the database; QR codes shown: {ours['qr_after_restore']} | "
        f"{theirs['restore_median_s']} s ({theirs['restore_max_s']} s): relaunch on its own profile |",
        f"| restore of one account alone, median (max) of {len(ours['restore_one_s'])} | "
        f"{ours['restore_one_median_s']} s ({ours['restore_one_max_s']} s): claim by a daemon on another host "
        "-> connected, no other page loading | |",
        f"| a browser SIGKILLed: all its accounts connected again | {kill['all_back_s']} s "
        f"({kill['accounts']} accounts, each restored from its archive) | |",
        "",
        f"Ratio ours/theirs (marginal PSS per session): **{result['ratio']}** (target <= 0.6). "
        f"Restore median {ours['restore_median_s']} s with {k} accounts restored at once, "
        f"{ours['restore_one_median_s']} s for one account alone (target <= 1.5 s); a killed browser's accounts all back "
        f"in {kill['all_back_s']} s (target <= 15 s); QR codes shown after a restore: {ours['qr_after_restore']} "
        "(target 0).", "",
        f"- Ours, flags (`blazzctl/providers/webjs/provider.py`; Playwright's defaults not used): "
        f"`{' '.join(ours['flags'])}`; viewport 1280x800.",
        f"- Theirs, flags (Puppeteer 24 defaults + whatsapp-web.js's own + its README's): `{' '.join(theirs['flags'])}`; "
        "`defaultViewport: null`; one Chromium per client. The same bridge script is injected on both sides "
        "(equal in-page work; whatsapp-web.js's own injected utilities are larger).",
        "", NOTES, END,
    ]
    section = "\n".join(lines)
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        text = head + section + rest.split(END, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.write_text(text, encoding="utf-8")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=4, help="accounts (K) per side, at least 2")
    parser.add_argument("--settle", type=float, default=15.0, help="seconds to wait before each PSS reading")
    parser.add_argument("--per-browser", type=int, default=None,
                        help="ours: providers.webjs.accounts_per_browser (default: the setting's default)")
    parser.add_argument("--json", action="store_true", help="print only JSON")
    parser.add_argument("--no-docs", action="store_true", help="do not append to docs/benchmarks.md")
    args = parser.parse_args(argv)
    if args.sessions < 2:
        parser.error("--sessions must be at least 2 (the marginal cost needs two readings)")
    from blazzctl.settings import WebjsSettings

    per_browser = args.per_browser or WebjsSettings().accounts_per_browser
    if per_browser < 1:
        parser.error("--per-browser must be at least 1")
    from tests.fakes.wa_web import FakeWhatsAppWeb

    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    with tempfile.TemporaryDirectory(prefix="blazz-browser-memory-") as tmp, \
            FakeWhatsAppWeb(port=0, ref_interval=20.0) as fake:
        root = Path(tmp)
        for side, n in (("1", args.sessions), ("2", args.sessions)):
            for i in range(1, n + 1):
                fake.seed(phone_of(side, i), **SEED)
        log = (lambda *a: None) if args.json else (lambda *a: print(*a, file=sys.stderr, flush=True))
        log(f"ours: {args.sessions} sessions through a session daemon ...")
        ours = summarise(run_ours(fake, args.sessions, args.settle, root / "ours", per_browser), args.sessions)
        log(f"theirs: {args.sessions} whatsapp-web.js-style clients ...")
        theirs = summarise(asyncio.run(run_theirs_async(fake, args.sessions, args.settle, root / "theirs")),
                           args.sessions)
    ratio = round(ours["marginal_mb_per_session"] / theirs["marginal_mb_per_session"], 2) \
        if theirs["marginal_mb_per_session"] > 0 else None
    result = {"date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "machine": machine(),
              "sessions": args.sessions, "per_browser": per_browser, "settle_s": args.settle, "seed": SEED, "ours": ours, "theirs": theirs,
              "ratio": ratio, "foreign_chromium_processes_max": FOREIGN[0], "load": load}
    if not args.no_docs:
        result["docs"] = str(write_docs(result))
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for name, side in (("ours", ours), ("whatsapp-web.js-style", theirs)):
            print(f"{name:>22}: marginal {side['marginal_mb_per_session']} MB/session, "
                  f"PSS {side['pss_1_mb']} MB (1) -> {side['pss_k_mb']} MB ({args.sessions}), "
                  f"restore median {side['restore_median_s']} s (max {side['restore_max_s']} s)")
        print(f"{'ratio ours/theirs':>22}: {ratio} (target <= 0.6)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
