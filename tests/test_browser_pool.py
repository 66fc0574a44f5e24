"""Pooled browsers (blazzctl/providers/webjs/pool.py) in real Chromium: K accounts per browser,
each in a context of its own whose storage no other account's page can read."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import psutil
import pytest

from blazzctl import proctree
from blazzctl.providers import base as p
from blazzctl.providers.webjs.provider import WebjsProvider
from blazzctl.settings import WebjsSettings

pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"
ORIGIN = "https://web.whatsapp.test"

WRITE = """async (who) => {
  localStorage.setItem('owner', who);
  await new Promise((res, rej) => {
    const o = indexedDB.open('secrets', 1);
    o.onupgradeneeded = () => o.result.createObjectStore('s');
    o.onsuccess = () => { const tx = o.result.transaction('s', 'readwrite'); tx.objectStore('s').put(who, 'owner');
                          tx.oncomplete = () => { o.result.close(); res(); }; tx.onerror = () => rej(tx.error); };
    o.onerror = () => rej(o.error);
  });
  document.cookie = 'owner=' + who + '; path=/';
}"""

READ = """async () => {
  const dbs = (await indexedDB.databases()).map((d) => d.name);
  let idb = null;
  if (dbs.includes('secrets')) {
    idb = await new Promise((res) => { const o = indexedDB.open('secrets');
      o.onsuccess = () => { const r = o.result.transaction('s').objectStore('s').get('owner');
                            r.onsuccess = () => { o.result.close(); res(r.result); }; }; });
  }
  return {local: localStorage.getItem('owner'), idb, cookie: document.cookie};
}"""


@pytest.fixture
def provider(tmp_path):
    if not Path(CHROMIUM).exists():
        pytest.skip("Chromium is not installed (apt-get install -y chromium)")

    async def ignore(_event):
        return None

    settings = replace(WebjsSettings(), accounts_per_browser=2, chromium_path=CHROMIUM)
    return WebjsProvider(settings=settings, state_dir=tmp_path / "state", emit=ignore, daemon_name="pool:1")


async def _page(context):
    async def blank(route):
        await route.fulfill(status=200, content_type="text/html", body="<!doctype html><title>app</title>")

    await context.route(f"{ORIGIN}/**", blank)
    page = await context.new_page()
    await page.goto(f"{ORIGIN}/app")
    return page


def test_accounts_share_a_browser_but_never_each_others_storage(provider, tmp_path):
    async def scenario():
        await provider.open()
        try:
            pool = provider.pool
            pages = {}
            for account in (1, 2, 3):
                pages[account] = await _page(await pool.context_for(account))
            layout = sorted(sorted(slot.contexts) for slot in pool.slots)
            await pages[1].evaluate(WRITE, "one")
            seen = {a: await pages[a].evaluate(READ) for a in (1, 2)}
            scratch = sorted(p.name for p in (tmp_path / "state" / "browsers").iterdir())
            await pool.release(3)  # its browser holds nothing more: it closes
            after_release = (len(pool.slots), sorted(p.name for p in (tmp_path / "state" / "browsers").iterdir()))
            await asyncio.sleep(2.5)  # the scratch profile goes once Chromium has let go of it
            gone = sorted(p.name for p in (tmp_path / "state" / "browsers").iterdir())
            return layout, seen, scratch, after_release, gone
        finally:
            await provider.close()

    layout, seen, scratch, after_release, gone = asyncio.run(scenario())
    assert layout == [[1, 2], [3]]  # two per browser (accounts_per_browser 2): a second browser for the third
    assert seen[1] == {"local": "one", "idb": "one", "cookie": "owner=one"}
    assert seen[2] == {"local": None, "idb": None, "cookie": ""}  # same browser, same origin: nothing shared
    assert len(scratch) == 2 and after_release[0] == 1
    assert len(gone) == 1 and gone[0] in scratch


def test_a_dead_pool_browser_takes_only_its_own_accounts(provider):
    async def scenario():
        await provider.open()
        try:
            pool = provider.pool
            contexts = {a: await pool.context_for(a) for a in (1, 2, 3)}
            closed = set()
            for account, context in contexts.items():
                context.on("close", lambda _c, a=account: closed.add(a))
            victim = next(slot for slot in pool.slots if 3 in slot.contexts)
            psutil.Process(_chromium_pid(victim)).kill()
            for _ in range(100):
                if 3 in closed:
                    break
                await asyncio.sleep(0.1)
            await asyncio.sleep(0.5)
            survivors = [sorted(slot.contexts) for slot in pool.slots]
            fresh = await pool.context_for(3)  # the daemon restarts the account: in a browser with room
            placed = sorted(sorted(slot.contexts) for slot in pool.slots)
            await fresh.new_page()
            return set(closed), survivors, placed
        finally:
            await provider.close()

    closed, survivors, placed = asyncio.run(scenario())
    assert closed == {3}
    assert survivors == [[1, 2]]
    assert placed == [[1, 2], [3]]


def _chromium_pid(slot) -> int:
    """The browser process of a pool slot: Chromium with the slot's scratch profile, not a child."""
    proc = proctree.browser_process(slot.scratch)
    assert proc is not None, f"no browser process with --user-data-dir={slot.scratch}"
    return proc.pid


def _checked_provider(tmp_path, emit, **webjs) -> WebjsProvider:
    settings = replace(WebjsSettings(), accounts_per_browser=2, chromium_path=CHROMIUM, **webjs)
    return WebjsProvider(settings=settings, state_dir=tmp_path / "state", emit=emit, daemon_name="pool:1")


async def _until(predicate, timeout: float, what: str) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


def test_a_browser_that_stops_answering_is_killed_and_only_its_accounts_close(tmp_path):
    """A SIGSTOPped browser (what a deadlocked or swapped-out one looks like) is found by the
    check within browser_check_interval + browser_hang_timeout and killed with its children, so
    its accounts restart (their contexts close); the other browser is left alone."""
    async def ignore(_event):
        return None

    provider = _checked_provider(tmp_path, ignore, browser_check_interval=0.5, browser_hang_timeout=2.0)

    async def scenario():
        await provider.open()
        try:
            pool = provider.pool
            contexts = {a: await pool.context_for(a) for a in (1, 2, 3)}
            closed = {}
            for account, context in contexts.items():
                context.on("close", lambda _c, a=account: closed.setdefault(a, time.monotonic()))
            victim = next(slot for slot in pool.slots if 1 in slot.contexts)
            stopped = psutil.Process(_chromium_pid(victim))
            family = proctree.tree(stopped)
            stopped.suspend()
            at = time.monotonic()
            await _until(lambda: {1, 2} <= set(closed), 20, "the stopped browser's contexts to close")
            await asyncio.sleep(1.0)
            alive = [proc.pid for proc in family if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE]
            return (max(closed[1], closed[2]) - at, set(closed), alive, [sorted(s.contexts) for s in pool.slots],
                    pool.killed_hung)
        finally:
            await provider.close()

    took, closed, alive, left, killed = asyncio.run(scenario())
    assert closed == {1, 2}, "only the stopped browser's accounts lost their contexts"
    assert alive == [], "the stopped browser and its children were killed"
    assert left == [[3]] and killed == 1
    assert 2.0 <= took <= 12.0, f"found after {took:.1f} s (check every 0.5 s, hang timeout 2 s)"


def test_a_browser_over_max_browser_mb_is_drained_one_account_at_a_time(tmp_path):
    """Over max_browser_mb (1 MB here: any browser), an old enough browser takes no new account
    and asks for its accounts' restarts one at a time: the next only once the previous one is
    connected in another browser. Empty, it closes."""
    asked: list[tuple[int, float]] = []
    provider = None

    async def daemon(event):  # what the session daemon does with a Restart: stop, start again (in a task)
        if isinstance(event, p.Restart):
            asked.append((event.account_id, time.monotonic()))
            asyncio.get_running_loop().create_task(restart(event.account_id))

    async def restart(account_id):
        provider.sessions.pop(account_id, None)
        await provider.pool.release(account_id)
        await asyncio.sleep(0.5)  # the new page loading
        await provider.pool.context_for(account_id)
        await asyncio.sleep(1.0)
        provider.sessions[account_id] = SimpleNamespace(ready=True)

    provider = _checked_provider(tmp_path, daemon, browser_check_interval=0.3, max_browser_mb=1)

    async def scenario():
        await provider.open()
        try:
            pool = provider.pool
            for account in (1, 2):
                await pool.context_for(account)
                provider.sessions[account] = SimpleNamespace(ready=True)
            old = pool.slots[0]
            await _until(lambda: old.draining, 15, "the browser to be drained")
            assert time.monotonic() - old.started >= 10 * 0.3, "drained before it was old enough"
            await pool.context_for(9)  # a new account while it drains: not into the draining browser
            placed_9 = [slot for slot in pool.slots if 9 in slot.contexts]
            await _until(lambda: old not in pool.slots and {1, 2} <= set(provider.sessions), 20,
                         "the drained browser to close, its accounts connected elsewhere")
            return placed_9[0] is not old, [sorted(s.contexts) for s in pool.slots], pool.recycled, old.pss_bytes
        finally:
            provider.sessions.clear()  # stand-ins, not sessions
            await provider.close()

    new_home_for_9, layout, recycled, pss = asyncio.run(scenario())
    assert new_home_for_9
    assert [a for a, _ in asked[:2]] == [1, 2], asked
    assert asked[1][1] - asked[0][1] >= 1.4, f"the second restart was asked before the first reconnected: {asked}"
    assert sorted(a for slot in layout for a in slot) == [1, 2, 9]
    assert recycled >= 1 and pss > 1024 * 1024


PAGE = """<!doctype html><title>app</title>
<img id=pic src="/pic.png" onload="window.pic = 'loaded'" onerror="window.pic = 'blocked'">"""


def test_blocked_resource_types_never_load_and_fetch_still_works(provider):
    """providers.webjs.block_resources: an image is aborted; the fetch media messages use is not."""
    from blazzctl.providers.webjs.pool import blocking

    served = []

    async def scenario():
        await provider.open()
        try:
            context = await provider.pool.context_for(1)

            async def origin(route):
                served.append(route.request.url.rsplit("/", 1)[1])
                if route.request.url.endswith("/pic.png"):
                    await route.fulfill(status=200, content_type="image/png", body=PNG)
                elif route.request.url.endswith("/media.enc"):
                    await route.fulfill(status=200, content_type="application/octet-stream", body=b"\x01\x02\x03")
                else:
                    await route.fulfill(status=200, content_type="text/html", body=PAGE)

            await context.route(f"{ORIGIN}/**", origin)
            await context.route("**/*", blocking(["image", "font", "media"]))  # first in line, as the session's
            page = await context.new_page()
            await page.goto(f"{ORIGIN}/app")
            await page.wait_for_function("window.pic !== undefined")
            fetched = await page.evaluate("async () => Array.from(new Uint8Array(await (await fetch('/media.enc')).arrayBuffer()))")
            return await page.evaluate("window.pic"), fetched
        finally:
            await provider.close()

    pic, fetched = asyncio.run(scenario())
    assert pic == "blocked" and "pic.png" not in served
    assert fetched == [1, 2, 3] and "media.enc" in served


PNG = bytes.fromhex("89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c4890000000d49444154789c6360000002"
                    "00010005fe02fea70000000049454e44ae426082")
