"""Login snapshots (blazzctl/providers/webjs/snapshot.py and .js) in real Chromium.

A snapshot taken in one browser is written into a fresh in-memory context of another browser
process before the app runs: every structured-clone type comes back as it was (CryptoKeys that
the page made non-extractable included, and still usable); a key made where the init script
does not run (a Worker) makes the snapshot fail loudly; and a WhatsApp Web login (the fake's:
a non-extractable AES-GCM key in IndexedDB, the login it encrypts in localStorage) carried this
way connects with no QR as the same linked device.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from blazzctl.providers.webjs import snapshot

pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-dev-shm-usage"]
ORIGIN = "https://web.whatsapp.test"  # every request to it is answered by routing: no network
PHONE = "+4915550077"

WRITE = """async () => {
  const key = await crypto.subtle.generateKey({name: 'AES-GCM', length: 256}, false, ['encrypt', 'decrypt']);
  const pair = await crypto.subtle.generateKey({name: 'ECDH', namedCurve: 'P-256'}, false, ['deriveBits']);
  const hmac = await crypto.subtle.importKey('raw', new Uint8Array(32).fill(7), {name: 'HMAC', hash: 'SHA-256'},
                                             false, ['sign', 'verify']);
  const ct = await crypto.subtle.encrypt({name: 'AES-GCM', iv: new Uint8Array(12).fill(1)}, key,
                                        new TextEncoder().encode('secret login'));
  const sig = await crypto.subtle.sign('HMAC', hmac, new TextEncoder().encode('x'));
  const value = {buf: new Uint8Array([1, 2, 3]).buffer, u16: new Uint16Array([65535, 7]),
    f64: new Float64Array([1.5, -0, NaN]), dv: new DataView(new Uint8Array([9, 8]).buffer),
    when: new Date(1700000000123), map: new Map([[1, 'one'], ['k', {deep: [1, null, undefined]}]]),
    set: new Set(['a', 2]), blob: new Blob(['blob body'], {type: 'text/plain'}),
    file: new File(['f'], 'a.txt', {type: 'text/plain', lastModified: 42}), big: 12345678901234567890n,
    re: /wa+/gi, neg0: -0, inf: -Infinity, text: 'h\u00e9llo \u2713', nested: {a: {b: [{c: true}]}},
    key, priv: pair.privateKey, pub: pair.publicKey, hmac};
  await new Promise((res, rej) => {
    const o = indexedDB.open('wawc', 7);
    o.onupgradeneeded = () => {
      const db = o.result;
      db.createObjectStore('keys');
      const s = db.createObjectStore('msgs', {keyPath: 'id', autoIncrement: true});
      s.createIndex('by_chat', 'chat', {unique: false});
      s.createIndex('tags', 'tags', {multiEntry: true});
    };
    o.onerror = () => rej(o.error);
    o.onsuccess = () => {
      const db = o.result, tx = db.transaction(['keys', 'msgs'], 'readwrite');
      tx.objectStore('keys').put(value, 'main');
      tx.objectStore('keys').put(ct, new Uint8Array([5, 6]));
      tx.objectStore('msgs').put({chat: 'c1', tags: ['x', 'y'], body: 'hi'});
      tx.objectStore('msgs').put({chat: 'c2', tags: [], body: 'yo'});
      tx.oncomplete = () => { db.close(); res(); };
      tx.onerror = () => rej(tx.error);
    };
  });
  localStorage.setItem('WASession', 'abc');
  localStorage.setItem('last-wid-md', '"1@c.us"');
  return Array.from(new Uint8Array(sig));
}"""

READ = """async (sig) => {
  const db = await new Promise((res, rej) => { const o = indexedDB.open('wawc'); o.onsuccess = () => res(o.result);
                                                o.onerror = () => rej(o.error); });
  const ask = (r) => new Promise((res, rej) => { r.onsuccess = () => res(r.result); r.onerror = () => rej(r.error); });
  const store = (name, mode) => db.transaction(name, mode || 'readonly').objectStore(name);
  const v = await ask(store('keys').get('main'));
  const ct = await ask(store('keys').get(new Uint8Array([5, 6])));
  const plain = new TextDecoder().decode(await crypto.subtle.decrypt(
    {name: 'AES-GCM', iv: new Uint8Array(12).fill(1)}, v.key, ct));
  const sigOk = await crypto.subtle.verify('HMAC', v.hmac, new Uint8Array(sig), new TextEncoder().encode('x'));
  const bits = await crypto.subtle.deriveBits({name: 'ECDH', public: v.pub}, v.priv, 256);
  const byChat = await ask(store('msgs').index('by_chat').getAll('c2'));
  const byTag = await ask(store('msgs').index('tags').getAll('y'));
  const nextId = await ask(store('msgs', 'readwrite').put({chat: 'c3', tags: []}));
  const deep = v.map.get('k').deep;
  return {version: db.version, plain, sigOk, bits: bits.byteLength, buf: Array.from(new Uint8Array(v.buf)),
    u16: [v.u16.constructor.name, ...v.u16], f64: [v.f64[0], Object.is(v.f64[1], -0), Number.isNaN(v.f64[2])],
    dv: [v.dv.getUint8(0), v.dv.getUint8(1)], when: v.when.getTime(), map: [...v.map.keys()],
    deep: [deep.length, 2 in deep, deep[2] === undefined], set: [...v.set], blob: [await v.blob.text(), v.blob.type],
    file: [v.file instanceof File, v.file.name, v.file.lastModified, await v.file.text()], big: v.big.toString(),
    re: [v.re.source, v.re.flags], neg0: Object.is(v.neg0, -0), inf: String(v.inf), text: v.text,
    nested: v.nested.a.b[0].c, byChat: byChat.map((m) => m.body), byTag: byTag.map((m) => m.body), nextId,
    local: [localStorage.getItem('WASession'), localStorage.getItem('last-wid-md')],
    keys: [v.key.type, v.priv.type, v.pub.type, v.key.usages.join(',')]};
}"""

WORKER_KEY = """async () => {
  const src = "onmessage = async () => postMessage(await crypto.subtle.generateKey(" +
              "{name: 'AES-GCM', length: 128}, false, ['encrypt']));";
  const worker = new Worker(URL.createObjectURL(new Blob([src], {type: 'text/javascript'})));
  const key = await new Promise((res) => { worker.onmessage = (e) => res(e.data); worker.postMessage(0); });
  await new Promise((res, rej) => {
    const o = indexedDB.open('wk', 1);
    o.onupgradeneeded = () => o.result.createObjectStore('keys');
    o.onsuccess = () => { const tx = o.result.transaction('keys', 'readwrite'); tx.objectStore('keys').put(key, 'k');
                          tx.oncomplete = () => { o.result.close(); res(); }; tx.onerror = () => rej(tx.error); };
  });
  return key.extractable;
}"""


@pytest.fixture(scope="module")
def chromium():
    if not Path(CHROMIUM).exists():
        pytest.skip("Chromium is not installed (apt-get install -y chromium)")
    return CHROMIUM


async def _routed_page(browser):
    """A context whose every request to ORIGIN gets an empty page, snapshot script installed."""
    context = await browser.new_context()
    await snapshot.install(context)

    async def blank(route):
        await route.fulfill(status=200, content_type="text/html", body="<!doctype html><title>app</title>")

    await context.route(f"{ORIGIN}/**", blank)
    page = await context.new_page()
    await page.goto(f"{ORIGIN}/app")
    return context, page


def test_every_structured_clone_type_survives_a_trip_to_another_browser(chromium):
    async def scenario():
        from playwright.async_api import async_playwright

        async with async_playwright() as pw:
            first = await pw.chromium.launch(executable_path=chromium, args=FLAGS)
            _, page = await _routed_page(first)
            sig = await page.evaluate(WRITE)
            data = await snapshot.take(page, f"{ORIGIN}/app")
            await first.close()
            second = await pw.chromium.launch(executable_path=chromium, args=FLAGS)
            context = await second.new_context()
            await snapshot.install(context)
            page = await snapshot.restore(context, f"{ORIGIN}/app", data)
            read = await page.evaluate(READ, sig)
            await second.close()
            return data, read

    data, read = asyncio.run(scenario())
    assert snapshot.is_snapshot(data) and json.loads(data)["version"] == snapshot.VERSION
    assert read == {
        "version": 7, "plain": "secret login", "sigOk": True, "bits": 32, "buf": [1, 2, 3],
        "u16": ["Uint16Array", 65535, 7], "f64": [1.5, True, True], "dv": [9, 8], "when": 1700000000123,
        "map": [1, "k"], "deep": [3, True, True], "set": ["a", 2], "blob": ["blob body", "text/plain"],
        "file": [True, "a.txt", 42, "f"], "big": "12345678901234567890", "re": ["wa+", "gi"], "neg0": True,
        "inf": "-Infinity", "text": "h\u00e9llo \u2713", "nested": True, "byChat": ["yo"], "byTag": ["hi"],
        "nextId": 3, "local": ["abc", '"1@c.us"'], "keys": ["secret", "private", "public", "encrypt,decrypt"]}


def test_a_key_made_in_a_worker_makes_the_snapshot_fail_loudly(chromium):
    async def scenario():
        from playwright.async_api import async_playwright

        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=chromium, args=FLAGS)
            _, page = await _routed_page(browser)
            extractable = await page.evaluate(WORKER_KEY)
            try:
                await snapshot.take(page, f"{ORIGIN}/app")
            except snapshot.SnapshotError as exc:
                return extractable, str(exc)
            finally:
                await browser.close()
            return extractable, None

    extractable, error = asyncio.run(scenario())
    assert extractable is False
    assert error is not None and "IndexedDB wk/keys" in error and "cannot be exported" in error


def test_a_snapshot_refuses_another_origin_and_what_is_not_a_snapshot():
    data = snapshot.encode({"origin": ORIGIN, "localStorage": {}, "indexedDB": []})
    assert snapshot.decode(data)["origin"] == ORIGIN
    for bad, why in ((b"\x00tar archive", "not a login snapshot"),
                     (data.replace(b'"version":1', b'"version":9'), "format version 9"),
                     (data[:-5], "damaged")):
        with pytest.raises(snapshot.SnapshotError, match=why):
            snapshot.decode(bad)

    async def other_origin():
        with pytest.raises(snapshot.SnapshotError, match="not of https://elsewhere.test"):
            await snapshot.restore(None, "https://elsewhere.test/", data)

    asyncio.run(other_origin())


def test_a_whatsapp_web_login_moves_to_another_browser_with_no_qr(chromium, fake_wa_web):
    async def wait_state(page, want: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        state = None
        while time.monotonic() < deadline:
            state = await page.evaluate("() => window.require && window.require('WAWebSocketModel').Socket.state")
            if state == want:
                return
            await asyncio.sleep(0.1)
        raise AssertionError(f"socket state {state}, wanted {want}")

    async def scenario():
        from playwright.async_api import async_playwright

        async with async_playwright() as pw:
            first = await pw.chromium.launch(executable_path=chromium, args=FLAGS)
            context = await first.new_context()
            await snapshot.install(context)
            page = await context.new_page()
            await page.goto(fake_wa_web.url)
            deadline = time.monotonic() + 30
            while not fake_wa_web.waiting_qrs():
                assert time.monotonic() < deadline, "no QR shown"
                await asyncio.sleep(0.1)
            fake_wa_web.link(fake_wa_web.waiting_qrs()[0], PHONE)
            await wait_state(page, "CONNECTED")
            data = await snapshot.take(page, fake_wa_web.url)
            await first.close()

            second = await pw.chromium.launch(executable_path=chromium, args=FLAGS)
            context = await second.new_context()
            await snapshot.install(context)
            started = time.monotonic()
            page = await snapshot.restore(context, fake_wa_web.url, data)
            await page.goto(fake_wa_web.url)
            await wait_state(page, "CONNECTED")
            took = time.monotonic() - started
            qrs = fake_wa_web.waiting_qrs()
            await second.close()
            return took, qrs

    took, qrs = asyncio.run(scenario())
    assert qrs == []
    devices = fake_wa_web.world.snapshot()["accounts"][PHONE.lstrip("+")]["devices"]
    assert len([d for d in devices if not d["logged_out"]]) == 1, devices
    assert took < 30
