"""The fake WhatsApp Web, driven by real Chromium through the in-page surface in its SURFACE.md."""

from __future__ import annotations

import base64
import json
import shutil
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.fakes.wa_web import WA_VERSION, ControlError

pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]
PHONE = "+4915550001"

# Records Socket/Conn/Cmd/Msg events from the first moment `window.require` exists (as a driver's
# init script would), into window.__rec.
RECORDER = """
(() => {
  window.__rec = [];
  const rec = (...e) => window.__rec.push(e);
  let real;
  Object.defineProperty(window, 'require', { configurable: true, get() { return real; }, set(fn) {
    real = fn;
    const S = fn('WAWebSocketModel').Socket;
    rec('state', S.state);
    S.on('change:state', (m, s) => rec('state', s));
    S.on('change:hasSynced', (m, v) => rec('synced', v));
    fn('WAWebConnModel').Conn.on('change:ref', (m, ref) => rec('ref', ref === undefined ? null : ref));
    fn('WAWebCmd').Cmd.on('logout logout_from_bridge', () => rec('logout'));
    const C = fn('WAWebCollections');
    C.Msg.on('add', (m) => rec('add', m.serialize()));
    C.Msg.on('change:ack', (m, ack) => rec('ack', m.id._serialized, ack));
    C.Msg.on('change:type', (m) => rec('type', m.serialize()));
    C.Msg.on('change:body', (m, body) => rec('body', m.id._serialized, body));
  }});
})();
"""

QR_JS = """async () => {
  const r = window.require, b64 = r('WABase64').encodeB64;
  const noise = await r('WAWebUserPrefsInfoStore').waNoiseInfo.get();
  const reg = await r('WAWebSignalStoreApi').waSignalStore.getRegistrationInfo();
  const adv = await r('WAWebAdvSignatureApi').getADVSecretKey();
  return [r('WAWebConnModel').Conn.ref, b64(noise.staticKeyPair.pubKey), b64(reg.identityKeyPair.pubKey), adv,
          r('WAWebCompanionRegClientUtils').DEVICE_PLATFORM].join(',');
}"""

SEND_JS = """async ({to, body, quoted}) => {
  const r = window.require;
  const wid = r('WAWebWidFactory').createWid(to);
  const chat = r('WAWebCollections').Chat.get(wid) || (await r('WAWebFindChatAction').findOrCreateLatestChat(wid)).chat;
  const MsgKey = r('WAWebMsgKey');
  const me = r('WAWebUserPrefsMeUser').getMaybeMePnUser();
  const key = new MsgKey({from: me, to: chat.id, id: await MsgKey.newId(), selfDir: 'out'});
  let extra = {};
  if (quoted) {
    const q = r('WAWebCollections').Msg.get(quoted);
    if (r('WAWebMsgReply').canReplyMsg(q.unsafe())) extra = q.msgContextInfo(chat);
  }
  const msg = {id: key, ack: 0, body, from: me, to: chat.id, local: true, self: 'out',
               t: Math.floor(Date.now() / 1000), isNewMsg: true, type: 'chat', ...extra};
  const [msgPromise, sendPromise] = r('WAWebSendMsgChatAction').addAndSendMsgToChat(chat, msg);
  await msgPromise; await sendPromise;
  return r('WAWebCollections').Msg.get(key._serialized).serialize();
}"""

SEND_MEDIA_JS = """async ({to, b64data, mimetype, filename, caption}) => {
  const r = window.require;
  const bytes = Uint8Array.from(atob(b64data), (c) => c.charCodeAt(0));
  const file = new File([bytes], filename, {type: mimetype});
  const OpaqueData = r('WAWebMediaOpaqueData');
  const opaque = await OpaqueData.createFromData(file, file.type);
  const prep = r('WAWebPrepRawMedia').prepRawMedia(opaque, {asDocument: false});
  const mediaData = await prep.waitForPrep();
  const mediaObject = r('WAWebMediaStorage').getOrCreateMediaObject(mediaData.filehash);
  const mediaType = r('WAWebMmsMediaTypes').msgToMediaType({type: mediaData.type, isGif: mediaData.isGif});
  if (!(mediaData.mediaBlob instanceof OpaqueData)) throw new Error('mediaBlob is not OpaqueData');
  mediaData.renderableUrl = mediaData.mediaBlob.url();
  mediaObject.consolidate(mediaData.toJSON());
  mediaData.mediaBlob.autorelease();
  const {mediaEntry} = await r('WAWebMediaMmsV4Upload').uploadMedia({mimetype: mediaData.mimetype, mediaObject, mediaType});
  mediaData.set({clientUrl: mediaEntry.mmsUrl, directPath: mediaEntry.directPath, mediaKey: mediaEntry.mediaKey,
                 mediaKeyTimestamp: mediaEntry.mediaKeyTimestamp, filehash: mediaObject.filehash,
                 encFilehash: mediaEntry.encFilehash, uploadhash: mediaEntry.uploadHash, size: mediaObject.size});
  const wid = r('WAWebWidFactory').createWid(to);
  const chat = (await r('WAWebFindChatAction').findOrCreateLatestChat(wid)).chat;
  const MsgKey = r('WAWebMsgKey'), me = r('WAWebUserPrefsMeUser').getMaybeMePnUser();
  const key = new MsgKey({from: me, to: chat.id, id: await MsgKey.newId(), selfDir: 'out'});
  const [p1, p2] = r('WAWebSendMsgChatAction').addAndSendMsgToChat(chat, {
    ...mediaData, id: key, ack: 0, from: me, to: chat.id, local: true, self: 'out', t: Math.floor(Date.now() / 1000),
    isNewMsg: true, caption, body: ''});
  await p1; await p2;
  return key._serialized;
}"""


# ----- helpers ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def playwright():
    if not Path(CHROMIUM).exists():
        pytest.skip("Chromium is not installed (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        yield pw


@pytest.fixture
def launch(playwright, tmp_path):
    """launch(profile_dir) → (context, page) on a persistent Chromium profile, recorder installed."""
    contexts = []

    def _launch(profile: Path | None = None):
        profile = profile or tmp_path / f"profile{len(contexts)}"
        ctx = playwright.chromium.launch_persistent_context(str(profile), executable_path=CHROMIUM, args=FLAGS,
                                                            headless=True)
        ctx.add_init_script(RECORDER)
        contexts.append(ctx)
        return ctx, ctx.pages[0] if ctx.pages else ctx.new_page()

    yield _launch
    for ctx in contexts:
        try:
            ctx.close()
        except Exception:  # already closed by the test
            pass


def socket_state(page) -> str:
    return page.evaluate("window.require('WAWebSocketModel').Socket.state")


def wait_state(page, *states: str, timeout: float = 15_000) -> str:
    page.wait_for_function("(states) => window.require && states.includes(window.require('WAWebSocketModel').Socket.state)",
                           arg=list(states), timeout=timeout)
    return socket_state(page)


def records(page, kind: str) -> list:
    return [r[1:] for r in page.evaluate("window.__rec") if r[0] == kind]


def boot_unpaired(page, fake) -> str:
    page.goto(fake.url)
    page.wait_for_function("window.Debug?.VERSION != undefined", timeout=15_000)
    wait_state(page, "UNPAIRED")
    return page.evaluate(QR_JS)


def link(page, fake, phone: str = PHONE) -> None:
    fake.link(boot_unpaired(page, fake), phone)
    page.wait_for_function("window.require('WAWebSocketModel').Socket.hasSynced === true", timeout=15_000)


def control(fake, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
    req = urllib.request.Request(fake.url + path.lstrip("/"), method=method,
                                 data=json.dumps(body).encode() if body is not None else None,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as res:
            return res.status, json.loads(res.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


# ----- boot and QR --------------------------------------------------------------------------------
def test_boot_shows_five_field_qr_and_refs_rotate(fake_wa_web, launch):
    fake_wa_web.set_ref_interval(1.0)
    _, page = launch()
    qr = boot_unpaired(page, fake_wa_web)

    assert page.evaluate("window.Debug.VERSION") == WA_VERSION
    assert records(page, "state")[:3] == [["UNLAUNCHED"], ["OPENING"], ["UNPAIRED"]]
    ref, noise, identity, adv, platform = qr.split(",")
    assert ref.startswith("2@") and platform == "1"
    for key in (noise, identity, adv):
        assert len(key) == 44 and len(base64.b64decode(key)) == 32

    page.wait_for_function("window.__rec.filter(r => r[0] === 'ref').length >= 3", timeout=10_000)  # 2 rotations
    rotated = page.evaluate(QR_JS).split(",")
    assert rotated[0] != ref and rotated[1:] == [noise, identity, adv, platform]
    assert fake_wa_web.waiting_qrs() == [",".join(rotated)]

    # the current ref and the one before it scan; older ones are expired, unknown ones 404
    with pytest.raises(ControlError) as err:
        fake_wa_web.link(qr, PHONE)
    assert (err.value.status, err.value.code) == (409, "expired_ref")
    status, body = control(fake_wa_web, "POST", "/control/link", {"qr": "2@nope," + qr.split(",", 1)[1], "phone": PHONE})
    assert (status, body["error"]) == (404, "unknown_ref")
    status, body = control(fake_wa_web, "POST", "/control/link", {"qr": "2@x,y", "phone": PHONE})
    assert (status, body["error"]) == (400, "invalid_qr")


def test_qr_goes_idle_and_refresh_brings_it_back(launch):
    from tests.fakes.wa_web import FakeWhatsAppWeb

    with FakeWhatsAppWeb(ref_interval=0.5, qr_idle_after=2) as fake:
        _, page = launch()
        qr = boot_unpaired(page, fake)
        assert wait_state(page, "UNPAIRED_IDLE") == "UNPAIRED_IDLE"
        with pytest.raises(ControlError) as err:
            fake.link(page.evaluate(QR_JS), PHONE)
        assert err.value.code == "qr_idle"
        page.evaluate("window.require('WAWebCmd').Cmd.refreshQR()")
        assert wait_state(page, "UNPAIRED") == "UNPAIRED"
        assert page.evaluate(QR_JS).split(",")[0] != qr.split(",")[0]


def test_pairing_code_links_the_page(fake_wa_web, launch):
    _, page = launch()
    boot_unpaired(page, fake_wa_web)
    code = page.evaluate("""async (phone) => {
        const api = window.require('WAWebAltDeviceLinkingApi');
        api.setPairingType('ALT_DEVICE_LINKING');
        await api.initializeAltDeviceLinking();
        return await api.startAltLinkingFlow(phone, true);
    }""", "4915550007")
    assert len(code) == 8 and code.isalnum() and code.upper() == code
    with pytest.raises(ControlError) as err:
        fake_wa_web.link(code=code, phone="+4915550008")
    assert err.value.code == "phone_mismatch"
    assert fake_wa_web.link(code=f"{code[:4]}-{code[4:]}")["phone"] == "4915550007"
    assert wait_state(page, "CONNECTED") == "CONNECTED"


def test_phone_page_links_a_pasted_qr(fake_wa_web, launch):
    ctx, page = launch()
    qr = boot_unpaired(page, fake_wa_web)
    phone = ctx.new_page()
    phone.goto(fake_wa_web.url + "phone")
    phone.fill("#link textarea[name=qr]", qr)
    phone.fill("#link input[name=phone]", "+49 1555 0001")
    phone.click("#link button")
    phone.wait_for_function("document.getElementById('out').textContent.startsWith('200')")
    assert wait_state(page, "CONNECTED") == "CONNECTED"
    phone.fill("#message input[name=phone]", PHONE)
    phone.click("#message button")
    page.wait_for_function("window.__rec.some(r => r[0] === 'type' && r[1].body === 'hello from the phone')")


# ----- linked: sync, messages, sending, acks ------------------------------------------------------
def test_link_connects_syncs_and_exposes_account_data(fake_wa_web, launch):
    fake_wa_web.seed(PHONE, chats=3, groups=1, participants=4)
    _, page = launch()
    link(page, fake_wa_web)

    assert records(page, "state")[-2:] == [["PAIRING"], ["CONNECTED"]]
    assert records(page, "synced") == [[True]]
    assert records(page, "ref")[-1] == [None]  # the ref is cleared after the scan
    info = page.evaluate("""() => { const r = window.require;
        return {me: r('WAWebUserPrefsMeUser').getMaybeMePnUser()._serialized,
                lid: r('WAWebUserPrefsMeUser').getMaybeMeLidUser()._serialized,
                conn: r('WAWebConnModel').Conn.serialize()}; }""")
    assert info["me"] == "4915550001@c.us" and info["lid"].endswith("@lid")
    assert info["conn"]["pushname"] and info["conn"]["platform"] == "android"

    data = page.evaluate("""() => { const C = window.require('WAWebCollections');
        const g = C.Chat.getModelsArray().find(c => c.isGroup);
        return {chats: C.Chat.length, contacts: C.Contact.length, group: g.serialize(),
                title: g.formattedTitle, meta: g.groupMetadata.serialize(),
                contact: C.Contact.getModelsArray()[0].serialize()}; }""")
    assert data["chats"] == 4 and data["contacts"] >= 4
    assert data["group"]["id"]["server"] == "g.us" and data["title"] == "Group 0"
    assert data["group"]["lastReceivedKey"]["remote"]["_serialized"] == data["group"]["id"]["_serialized"]
    assert len(data["meta"]["participants"]) == 4
    assert {"id", "isAdmin", "isSuperAdmin"} <= set(data["meta"]["participants"][0])
    assert data["contact"]["id"]["_serialized"].endswith("@c.us") and data["contact"]["pushname"]


def test_messages_sending_acks_and_number_checks(fake_wa_web, launch):
    _, page = launch()
    link(page, fake_wa_web)

    incoming = fake_wa_web.deliver(PHONE, "+4915550002", "hello", id="ABCDEF0123456789")
    page.wait_for_function("window.__rec.some(r => r[0] === 'type')")
    [[placeholder]] = records(page, "add")  # first a ciphertext placeholder, then change:type
    assert (placeholder["type"], placeholder.get("body"), placeholder["isNewMsg"]) == ("ciphertext", None, True)
    [[msg]] = records(page, "type")
    assert msg["id"]["_serialized"] == incoming["_serialized"] == "false_4915550002@c.us_ABCDEF0123456789"
    assert (msg["from"]["_serialized"], msg["to"]["_serialized"]) == ("4915550002@c.us", "4915550001@c.us")
    assert (msg["body"], msg["type"], msg["isNewMsg"], msg["ack"]) == ("hello", "chat", True, 0)
    assert abs(msg["t"] - time.time()) < 60
    # decrypting sets the body too (change:body fires before change:type), without edit markers
    assert records(page, "body") == [[incoming["_serialized"], "hello"]]
    assert "latestEditSenderTimestampMs" not in msg

    fake_wa_web.deliver(PHONE, "4915550002", "hello", id="ABCDEF0123456789")  # delivered twice
    fake_wa_web.deliver(PHONE, "4915550004", "in a group", group="120363000000000098", decrypt_after=0)
    page.wait_for_function("window.__rec.filter(r => r[0] === 'add').length === 3")
    adds = [r[0] for r in records(page, "add")]
    assert adds[1]["id"]["_serialized"] == incoming["_serialized"]
    group_msg = adds[2]
    assert group_msg["id"]["_serialized"].endswith("_4915550004@c.us")
    assert group_msg["from"]["_serialized"] == "120363000000000098@g.us"
    assert group_msg["author"]["_serialized"] == "4915550004@c.us"

    sent = page.evaluate(SEND_JS, {"to": "4915550002@c.us", "body": "hi back", "quoted": incoming["_serialized"]})
    assert sent["id"]["fromMe"] is True and sent["ack"] == 1
    [record] = fake_wa_web.sent("4915550001")
    assert (record["to"], record["body"], record["type"], record["quoted_id"]) == (
        "4915550002@c.us", "hi back", "chat", "ABCDEF0123456789")
    assert record["id"] == sent["id"]["_serialized"]

    status, body = control(fake_wa_web, "POST", "/control/ack", {"phone": PHONE, "id": record["msg_id"], "ack": 3})
    assert status == 200
    page.wait_for_function("window.__rec.some(r => r[0] === 'ack' && r[2] === 3)")
    assert records(page, "ack")[-1] == [sent["id"]["_serialized"], 3]

    media_id = page.evaluate(SEND_MEDIA_JS, {"to": "4915550002@c.us", "b64data": base64.b64encode(b"%PDF-1.4 fake").decode(),
                                             "mimetype": "application/pdf", "filename": "a.pdf", "caption": "the file"})
    status, body = control(fake_wa_web, "GET", "/control/sent?phone=4915550001")
    media = body["messages"][-1]
    assert media["id"] == media_id and media["type"] == "document" and media["caption"] == "the file"
    assert media["media"]["mimetype"] == "application/pdf" and media["media"]["size"] == 13

    pdf = fake_wa_web.deliver(PHONE, "4915550002", "a pdf for you",
                              media={"mimetype": "application/pdf", "data": base64.b64encode(b"%PDF-in").decode(),
                                     "filename": "in.pdf"}, decrypt_after=0)
    got = page.evaluate("""async (id) => {
        const r = window.require;
        await new Promise((ok) => { const poll = () => r('WAWebCollections').Msg.get(id) ? ok() : setTimeout(poll, 50); poll(); });
        const m = r('WAWebCollections').Msg.get(id);
        const buf = await r('WAWebDownloadManager').downloadManager.downloadAndMaybeDecrypt({directPath: m.directPath});
        return {type: m.type, caption: m.caption, mimetype: m.mimetype, filename: m.filename,
                data: btoa(String.fromCharCode(...new Uint8Array(buf)))}; }""", pdf["_serialized"])
    assert got == {"type": "document", "caption": "a pdf for you", "mimetype": "application/pdf",
                   "filename": "in.pdf", "data": base64.b64encode(b"%PDF-in").decode()}

    fake_wa_web.not_on_whatsapp("+4915550404")
    exists = page.evaluate("""async () => { const r = window.require, W = r('WAWebWidFactory');
        const q = r('WAWebQueryExistsJob');
        const yes = await q.queryWidExists(W.createWid('4915550002@c.us'));
        const no = await q.queryWidExists(W.createWid('4915550404@c.us'));
        let invalid; try { W.createWid('not a number'); } catch (e) { invalid = e.message; }
        return {yes: yes && yes.wid._serialized, no, invalid}; }""")
    assert exists == {"yes": "4915550002@c.us", "no": None, "invalid": "wid error: invalid wid"}


# ----- WhatsApp Web as it really delivers (each behaviour on by default, knobs turn them off) ------
SEND_AS_JS = """async ({to, body, asLid}) => {
  const r = window.require, prefs = r('WAWebUserPrefsMeUser');
  try {
    const wid = r('WAWebWidFactory').createWid(to);
    const chat = r('WAWebCollections').Chat.get(wid) || (await r('WAWebFindChatAction').findOrCreateLatestChat(wid)).chat;
    const MsgKey = r('WAWebMsgKey'), me = asLid ? prefs.getMaybeMeLidUser() : prefs.getMaybeMePnUser();
    const key = new MsgKey({from: me, to: chat.id, id: await MsgKey.newId(), selfDir: 'out'});
    const [p1, p2] = r('WAWebSendMsgChatAction').addAndSendMsgToChat(chat, {id: key, ack: 0, body, from: me,
      to: chat.id, local: true, self: 'out', t: Math.floor(Date.now() / 1000), isNewMsg: true, type: 'chat'});
    await p1; await p2;
    return {id: key._serialized};
  } catch (e) { return {error: e.message}; }
}"""


def test_held_ciphertext_decrypts_on_demand(fake_wa_web, launch):
    _, page = launch()
    link(page, fake_wa_web)
    held = fake_wa_web.deliver(PHONE, "4915550002", "late", hold=True)
    page.wait_for_function("window.__rec.some(r => r[0] === 'add')")
    page.wait_for_timeout(800)
    assert records(page, "type") == []
    fake_wa_web.decrypt(PHONE, held["id"]["id"])
    page.wait_for_function("window.__rec.some(r => r[0] === 'type')")
    [[msg]] = records(page, "type")
    assert (msg["id"]["_serialized"], msg["type"], msg["body"]) == (held["_serialized"], "chat", "late")


def test_lid_senders_lid_groups_and_the_own_lid_as_sender(fake_wa_web, launch):
    _, page = launch()
    link(page, fake_wa_web)
    m = fake_wa_web.deliver(PHONE, "4915550003", "from a LID", decrypt_after=0)  # odd: a LID-only sender
    assert m["id"]["remote"].endswith("@lid") and m["from"] == m["id"]["remote"]
    page.wait_for_function("(id) => window.require('WAWebCollections').Msg.get(id)", arg=m["_serialized"])
    lid = m["id"]["remote"]
    lookup = """(lid) => { const r = window.require, c = r('WAWebApiContact'), W = r('WAWebWidFactory');
        const pn = c.getPhoneNumber(W.createWid(lid)); return pn ? pn._serialized : null; }"""
    assert page.evaluate(lookup, lid) is None
    assert page.evaluate(SEND_AS_JS, {"to": lid, "body": "as PN", "asLid": False}) == {
        "error": "a LID chat needs the own LID as sender"}
    ok = page.evaluate(SEND_AS_JS, {"to": lid, "body": "as LID", "asLid": True})
    assert "error" not in ok and fake_wa_web.sent(PHONE)[-1]["to"] == lid
    fake_wa_web.reveal_phone(PHONE, "4915550003")
    page.wait_for_function(f"({lookup})('{lid}') !== null")
    assert page.evaluate(lookup, lid) == "4915550003@c.us"

    g = fake_wa_web.deliver(PHONE, "4915550004", "in a LID group", group="120363000000000077", decrypt_after=0)
    assert g["author"].endswith("@lid")  # LID addressing mode: participants by LID, phone known here
    page.wait_for_function("(id) => window.require('WAWebCollections').Msg.get(id)", arg=g["_serialized"])
    assert page.evaluate(lookup, g["author"]) == "4915550004@c.us"
    assert page.evaluate(SEND_AS_JS, {"to": g["from"], "body": "hi", "asLid": False})["error"].startswith("a LID chat")
    assert "error" not in page.evaluate(SEND_AS_JS, {"to": g["from"], "body": "hi", "asLid": True})


def test_canonical_ids_and_no_lid_for_user(fake_wa_web, launch):
    _, page = launch()
    link(page, fake_wa_web)
    query = """async (n) => { const r = window.require;
        const found = await r('WAWebQueryExistsJob').queryWidExists(r('WAWebWidFactory').createWid(n + '@c.us'));
        return found && found.wid._serialized; }"""
    assert page.evaluate(query, "5511987654321") == "551187654321@c.us"  # Brazil's 9th digit
    assert page.evaluate(query, "525512345678") == "5215512345678@c.us"  # Mexico's 1
    assert page.evaluate(SEND_AS_JS, {"to": "5511987654321@c.us", "body": "typed", "asLid": False}) == {
        "error": "No LID for user"}
    assert "error" not in page.evaluate(SEND_AS_JS, {"to": "551187654321@c.us", "body": "canonical", "asLid": False})
    assert page.evaluate(SEND_AS_JS, {"to": "4915550777@c.us", "body": "never looked up", "asLid": False}) == {
        "error": "No LID for user"}
    fake_wa_web.set_canonical("4915550888", "4915550889")
    assert page.evaluate(query, "4915550888") == "4915550889@c.us"


def test_edits_and_revokes_from_the_control_api(fake_wa_web, launch):
    _, page = launch()
    link(page, fake_wa_web)
    m = fake_wa_web.deliver(PHONE, "4915550002", "original", decrypt_after=0)
    page.wait_for_function("(id) => window.require('WAWebCollections').Msg.get(id)", arg=m["_serialized"])
    assert fake_wa_web.edit(PHONE, m["id"]["id"], "edited")["previous"] == "original"
    page.wait_for_function("window.__rec.some(r => r[0] === 'body')")
    assert records(page, "body") == [[m["_serialized"], "edited"]]
    assert page.evaluate("(id) => window.require('WAWebCollections').Msg.get(id).latestEditSenderTimestampMs > 0",
                         m["_serialized"])
    fake_wa_web.revoke(PHONE, m["_serialized"])
    page.wait_for_function("window.__rec.some(r => r[0] === 'type')")
    [[revoked]] = records(page, "type")
    assert (revoked["type"], revoked["body"]) == ("revoked", "")
    sent = page.evaluate(SEND_JS, {"to": "4915550002@c.us", "body": "ours", "quoted": None})
    fake_wa_web.edit(PHONE, sent["id"]["id"], "ours, edited")
    page.wait_for_function("window.__rec.filter(r => r[0] === 'body').length === 3")  # the revoke emptied a body too
    assert records(page, "body")[-1] == [sent["id"]["_serialized"], "ours, edited"]
    with pytest.raises(ControlError) as err:
        fake_wa_web.edit(PHONE, "NOPE", "x")
    assert err.value.code == "unknown_message"


def test_each_behaviour_can_be_turned_off(fake_wa_web, launch):
    fake_wa_web.behave(decrypt_delay=0, lid_senders=False, lid_sender_required=False, canonical_ids=False,
                       echo=False)
    _, page = launch()
    link(page, fake_wa_web)
    m = fake_wa_web.deliver(PHONE, "4915550003", "plain")
    assert m["from"] == "4915550003@c.us"
    page.wait_for_function("window.__rec.some(r => r[0] === 'add')")
    assert records(page, "add")[0][0]["body"] == "plain"
    assert page.evaluate(SEND_AS_JS, {"to": "5511987654321@c.us", "body": "typed", "asLid": False}).get("id")
    assert len(records(page, "add")) == 1  # no echo of our own send
    with pytest.raises(ControlError) as err:
        fake_wa_web.behave(telepathy=True)
    assert err.value.code == "unknown_behaviour"


# ----- losing the session ------------------------------------------------------------------------
def test_logout_from_phone_clears_the_login(fake_wa_web, launch):
    _, page = launch()
    link(page, fake_wa_web)
    with page.expect_navigation(url="**/?post_logout=1", timeout=10_000):
        fake_wa_web.logout(PHONE)
    assert wait_state(page, "UNPAIRED") == "UNPAIRED"
    page.reload()
    assert wait_state(page, "UNPAIRED") == "UNPAIRED"
    assert page.evaluate("localStorage.getItem('WASession')") is None


def test_logout_from_the_page_unlinks_the_device(fake_wa_web, launch):
    _, page = launch()
    link(page, fake_wa_web)
    with page.expect_navigation(url="**/?post_logout=1", timeout=10_000):
        page.evaluate("window.require('WAWebSocketModel').Socket.logout()")
    assert wait_state(page, "UNPAIRED") == "UNPAIRED"
    [device] = fake_wa_web.state()["accounts"]["4915550001"]["devices"]
    assert device["logged_out"] is True


def test_conflict_then_takeover(fake_wa_web, launch):
    _, page = launch()
    link(page, fake_wa_web)
    fake_wa_web.socket_state(PHONE, "TIMEOUT")
    assert wait_state(page, "TIMEOUT") == "TIMEOUT"
    fake_wa_web.socket_state(PHONE, "CONNECTED")
    fake_wa_web.conflict(PHONE)
    assert wait_state(page, "CONFLICT") == "CONFLICT"
    fake_wa_web.deliver(PHONE, "4915550002", "during the conflict", decrypt_after=0)
    page.wait_for_timeout(500)
    assert records(page, "add") == []  # a page in CONFLICT receives nothing
    page.evaluate("window.require('WAWebSocketModel').Socket.takeover()")
    assert wait_state(page, "CONNECTED") == "CONNECTED"
    fake_wa_web.deliver(PHONE, "4915550002", "after takeover", decrypt_after=0)
    page.wait_for_function("window.__rec.filter(r => r[0] === 'add').length === 2")
    assert [m["body"] for [m] in records(page, "add")] == ["during the conflict", "after takeover"]


def test_slow_boot_and_reload_hooks(fake_wa_web, launch):
    _, page = launch()
    link(page, fake_wa_web)
    fake_wa_web.slow_boot(2.0)
    with page.expect_navigation(timeout=10_000):
        assert fake_wa_web.reload(PHONE) == {"pages": 1}
    assert page.evaluate("window.Debug?.VERSION") is None  # the bundle is still loading
    page.wait_for_function("window.Debug?.VERSION != undefined", timeout=10_000)
    fake_wa_web.slow_boot(0)
    assert wait_state(page, "CONNECTED") == "CONNECTED"


def test_releases_a_stored_document_loads_its_own_build_and_deprecated_builds_are_refused(fake_wa_web, launch):
    """The app document points at its build's scripts: after a new build goes live, a copy of the
    old document still loads the old build (what a pin serves); a build can lack modules, or be
    refused by the server (DEPRECATED_VERSION)."""
    old_document = urllib.request.urlopen(fake_wa_web.url, timeout=10).read()
    new, gone = "2.3000.1017100001", "2.3000.1016000000"
    try:
        assert fake_wa_web.release(new, drop=["WAWebSendMsgChatAction"]) == {
            "version": new, "dropped": ["WAWebSendMsgChatAction"], "deprecated": False, "live": True}
        _, page = launch()
        page.goto(fake_wa_web.url)
        page.wait_for_function("window.Debug?.VERSION != undefined", timeout=15_000)
        assert page.evaluate("window.Debug.VERSION") == new
        assert "Requiring unknown module" in page.evaluate(
            "() => { try { window.require('WAWebSendMsgChatAction'); return 'found'; } catch (e) { return String(e); } }")

        _, pinned = launch()
        pinned.route(fake_wa_web.url, lambda route: route.fulfill(status=200, body=old_document,
                                                                  content_type="text/html"))
        pinned.goto(fake_wa_web.url)
        pinned.wait_for_function("window.Debug?.VERSION != undefined", timeout=15_000)
        assert pinned.evaluate("window.Debug.VERSION") == WA_VERSION
        assert pinned.evaluate("typeof window.require('WAWebSendMsgChatAction')") == "object"

        fake_wa_web.release(gone, deprecated=True)
        _, refused = launch()
        refused.goto(fake_wa_web.url)
        assert wait_state(refused, "DEPRECATED_VERSION") == "DEPRECATED_VERSION"
        assert fake_wa_web.state()["live"] == gone
        status, body = control(fake_wa_web, "POST", "/control/release", {"version": "latest"})
        assert (status, body["error"]) == (400, "invalid_version")
        status, _ = control(fake_wa_web, "GET", "/static/v/9.9.9/app.js")
        assert status == 404
    finally:
        fake_wa_web.release(WA_VERSION)


# ----- the login lives in the profile (IndexedDB key + Local Storage) ---------------------------
def _copy_login(src: Path, dst: Path, parts=("IndexedDB", "Local Storage")) -> Path:
    for part in parts:
        shutil.copytree(src / "Default" / part, dst / "Default" / part)
    return dst


def test_copied_profile_restores_the_login_and_nothing_else_does(fake_wa_web, launch, tmp_path):
    ctx, page = launch(tmp_path / "original")
    link(page, fake_wa_web)
    quoted = fake_wa_web.deliver(PHONE, "4915550002", "before")["_serialized"]
    page.wait_for_function("(id) => window.require('WAWebCollections').Msg.get(id)", arg=quoted)
    sent = page.evaluate(SEND_JS, {"to": "4915550002@c.us", "body": "reply", "quoted": quoted})["id"]["_serialized"]
    ctx.close()
    fake_wa_web.deliver(PHONE, "4915550002", "while the browser was away", decrypt_after=0)

    _, page = launch(_copy_login(tmp_path / "original", tmp_path / "copy"))
    page.goto(fake_wa_web.url)
    page.wait_for_function("window.require('WAWebSocketModel').Socket.hasSynced === true", timeout=15_000)
    assert [s for [s] in records(page, "state")] == ["UNLAUNCHED", "OPENING", "CONNECTED"]
    assert records(page, "ref") == []
    page.wait_for_function("window.__rec.some(r => r[0] === 'add')", timeout=10_000)
    missed = [m for [m] in records(page, "add") if m["isNewMsg"]]
    assert [m["body"] for m in missed] == ["while the browser was away"]
    history = page.evaluate("(id) => window.require('WAWebCollections').Msg.get(id).serialize()", sent)
    assert (history["body"], history["ack"], history["id"]["fromMe"], history["quotedStanzaID"]) == (
        "reply", 1, True, quoted.split("_")[2])
    key = page.evaluate("""() => new Promise((resolve) => {
        const open = indexedDB.open('wawc_db_enc');
        open.onsuccess = () => open.result.transaction('keys').objectStore('keys').get('main').onsuccess =
            (e) => resolve({type: e.target.result.type, extractable: e.target.result.extractable}); })""")
    assert key == {"type": "secret", "extractable": False}
    page.context.close()

    _, page = launch(_copy_login(tmp_path / "original", tmp_path / "ls-only", parts=("Local Storage",)))
    page.goto(fake_wa_web.url)
    assert wait_state(page, "UNPAIRED") == "UNPAIRED"
    _, page = launch(tmp_path / "fresh")
    page.goto(fake_wa_web.url)
    assert wait_state(page, "UNPAIRED") == "UNPAIRED"


# ----- control API without a browser -------------------------------------------------------------
def test_control_api_errors_and_phone_formats(fake_wa_web):
    status, body = control(fake_wa_web, "POST", "/control/message", {"phone": "+4915550001", "from": "4915550002"})
    assert (status, body["error"]) == (404, "unknown_account")
    status, body = control(fake_wa_web, "POST", "/control/seed", {"phone": "+4915550001", "chats": 2, "groups": 1})
    assert status == 200 and body["chats"] == 3
    status, _ = control(fake_wa_web, "POST", "/control/message", {"phone": "4915550001", "from": "+4915550002", "body": "x"})
    assert status == 200
    status, body = control(fake_wa_web, "POST", "/control/message", {"phone": "call me", "from": "1"})
    assert (status, body["error"]) == (400, "invalid_phone")
    status, body = control(fake_wa_web, "POST", "/control/ack", {"phone": PHONE, "id": "nope", "ack": 2})
    assert (status, body["error"]) == (404, "unknown_message")
    status, body = control(fake_wa_web, "POST", "/control/seed", {"phone": PHONE, "bogus": 1})
    assert (status, body["error"]) == (400, "invalid_request")
    status, body = control(fake_wa_web, "GET", "/control/state")
    assert status == 200 and body["accounts"]["4915550001"]["chats"] == 4
    with urllib.request.urlopen(fake_wa_web.url + "phone") as res:
        assert b"QR string" in res.read()
