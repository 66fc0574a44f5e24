"""Pooled browsers (blazzctl/providers/webjs/pool.py) in real Chromium: K accounts per browser,
each in a context of its own whose storage no other account's page can read."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import psutil
import pytest

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
    for proc in psutil.Process().children(recursive=True):
        try:
            cmd = proc.cmdline()
        except psutil.Error:
            continue
        if f"--user-data-dir={slot.scratch}" in cmd and not any(a.startswith("--type=") for a in cmd):
            return proc.pid
    raise AssertionError(f"no browser process with --user-data-dir={slot.scratch}")


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
