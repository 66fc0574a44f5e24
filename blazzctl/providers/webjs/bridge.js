// blazz bridge: injected into WhatsApp Web before its own scripts (add_init_script).
// It waits for WhatsApp's module system, then reads it only through window.require(...)
// and reports to Python through the exposed binding window.blazzEmit(kind, payload).
// Python calls the helpers on window.__blazz with page.evaluate.
(() => {
  "use strict";
  if (window.__blazz) return;
  const OPTS = window.__blazzOptions || {};
  const emit = (kind, payload) => {
    try { if (window.blazzEmit) window.blazzEmit(kind, payload || {}); } catch (e) { /* page closing */ }
  };
  const req = (name) => window.require(name);
  const tryReq = (name) => { try { return window.require(name); } catch (e) { return null; } };
  const ser = (w) => (w && typeof w === "object" ? w._serialized : w) || null;

  async function qrString(Conn) {
    const ref = Conn.ref;
    if (!ref) return null;
    const b64 = req("WABase64").encodeB64;
    const noise = await req("WAWebUserPrefsInfoStore").waNoiseInfo.get();
    const reg = await req("WAWebSignalStoreApi").waSignalStore.getRegistrationInfo();
    const adv = tryReq("WAWebAdvSignatureApi") || tryReq("WAWebUserPrefsMultiDevice");
    const advKey = await adv.getADVSecretKey();
    const platform = req("WAWebCompanionRegClientUtils").DEVICE_PLATFORM;
    return [ref, b64(noise.staticKeyPair.pubKey), b64(reg.identityKeyPair.pubKey), advKey, platform].join(",");
  }

  function me() {
    const prefs = tryReq("WAWebUserPrefsMeUser");
    const wid = prefs && (prefs.getMaybeMePnUser() || prefs.getMaybeMeLidUser());
    const conn = req("WAWebConnModel").Conn;
    return { wid: ser(wid), user: wid ? wid.user : null, pushname: conn.pushname || null,
             platform: conn.platform || null };
  }

  function messageView(m) {
    const id = m.id || {};
    const body = m.caption !== undefined && m.directPath ? m.caption : (m.body || "");
    return {
      id: ser(id), msg_id: id.id || null, from_me: !!id.fromMe, remote: ser(id.remote),
      from: ser(m.from), to: ser(m.to), author: ser(m.author), type: m.type || "chat", body,
      t: m.t || null, ack: m.ack === undefined ? null : m.ack, has_media: !!m.directPath,
      mimetype: m.mimetype || null, filename: m.filename || null, size: m.size || null,
      quoted_id: m.quotedStanzaID || null, is_status: !!(m.isStatusV3 || ser(id.remote) === "status@broadcast"),
      lat: m.lat === undefined ? null : m.lat, lng: m.lng === undefined ? null : m.lng, loc: m.loc || null,
      vcards: (m.vcardList || []).map((v) => v.vcard), reaction: m.reactionText || null,
      notify_name: m.notifyName || null,
    };
  }

  const state = { started: false, qrShown: 0, pairing: false };

  async function startLogin(Socket, Conn, Cmd) {
    if (OPTS.pairPhone) {
      if (state.pairing) return;
      state.pairing = true;
      const linking = req("WAWebAltDeviceLinkingApi");
      linking.setPairingType("ALT_DEVICE_LINKING");
      await linking.initializeAltDeviceLinking();
      const code = await linking.startAltLinkingFlow(String(OPTS.pairPhone).replace(/\D/g, ""), true);
      emit("code", { code });
      return;
    }
    const send = async () => { const qr = await qrString(Conn); if (qr && !qr.startsWith("undefined")) emit("qr", { qr }); };
    Conn.on("change:ref", () => { if (["UNPAIRED", "UNPAIRED_IDLE"].includes(Socket.state)) send(); });
    await send();
  }

  function attach() {
    const Socket = req("WAWebSocketModel").Socket;
    const Conn = req("WAWebConnModel").Conn;
    const Cmd = req("WAWebCmd").Cmd;
    const { Msg, Chat } = req("WAWebCollections");
    emit("loaded", { version: window.Debug.VERSION });
    let loginStarted = false;
    const onState = (s) => {
      emit("state", { state: s });
      if (["UNPAIRED", "UNPAIRED_IDLE"].includes(s) && !loginStarted) {
        loginStarted = true;
        startLogin(Socket, Conn, Cmd).catch((e) => emit("error", { where: "login", message: String(e && e.message || e) }));
      }
      if (s === "UNPAIRED_IDLE" && !OPTS.pairPhone) {
        try { Cmd.refreshQR(); } catch (e) { /* older builds */ }
      }
    };
    Socket.on("change:state", (_m, s) => onState(s));
    Socket.on("change:hasSynced", (_m, synced) => { if (synced !== false) emit("synced", me()); });
    Cmd.on("logout", () => emit("logout", {}));
    Cmd.on("logout_from_bridge", () => emit("logout", {}));
    Msg.on("add", (m) => { if (m.isNewMsg) emit("message", messageView(m)); });
    Msg.on("change:ack", (m, ack) => emit("ack", { id: ser(m.id), ack }));
    onState(Socket.state);
    if (Socket.hasSynced && Socket.state === "CONNECTED") emit("synced", me());
  }

  function boot() {
    if (window.Debug && window.Debug.VERSION && typeof window.require === "function") {
      try { req("WAWebSocketModel"); } catch (e) { return false; }
      try { attach(); } catch (e) { emit("error", { where: "attach", message: String(e && e.message || e) }); }
      return true;
    }
    return false;
  }

  // --- helpers Python calls ------------------------------------------------------------------

  async function chatFor(jid) {
    const wid = req("WAWebWidFactory").createWid(jid);
    const { Chat } = req("WAWebCollections");
    return Chat.get(wid) || (await req("WAWebFindChatAction").findOrCreateLatestChat(wid)).chat;
  }

  async function numberExists(number) {
    const wid = req("WAWebWidFactory").createWid(String(number).replace(/\D/g, "") + "@c.us");
    const found = await req("WAWebQueryExistsJob").queryWidExists(wid);
    return found && found.wid ? ser(found.wid) : null;
  }

  async function downloadMedia(serializedId) {
    const { Msg } = req("WAWebCollections");
    const m = Msg.get(serializedId) || (((await Msg.getMessagesById([serializedId])) || {}).messages || [])[0];
    if (!m || !m.directPath) return null;
    const buffer = await req("WAWebDownloadManager").downloadManager.downloadAndMaybeDecrypt({
      directPath: m.directPath, encFilehash: m.encFilehash, filehash: m.filehash, mediaKey: m.mediaKey,
      mediaKeyTimestamp: m.mediaKeyTimestamp, type: m.type, signal: new AbortController().signal });
    const bytes = new Uint8Array(buffer);
    let text = "";
    for (let i = 0; i < bytes.length; i += 0x8000) text += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
    return { data: btoa(text), mimetype: m.mimetype || null, filename: m.filename || null, size: bytes.length };
  }

  async function messageExists(serializedId) {
    const { Msg } = req("WAWebCollections");
    if (Msg.get(serializedId)) return true;
    const found = Msg.getMessagesById ? await Msg.getMessagesById([serializedId]) : null;
    return !!(found && found.messages && found.messages.length);
  }

  async function sendMessage(args) {
    const { to, body, msgId, quotedId, media } = args;
    const chat = await chatFor(to);
    if (!chat) throw new Error(`no chat for ${to}`);
    const MsgKey = req("WAWebMsgKey");
    const meWid = req("WAWebUserPrefsMeUser").getMaybeMePnUser();
    const key = new MsgKey({ from: meWid, to: chat.id, id: msgId || (await MsgKey.newId()), selfDir: "out" });
    let extra = {};
    if (quotedId) {
      const { Msg } = req("WAWebCollections");
      const quoted = Msg.get(quotedId) || (await Msg.getMessagesById([quotedId])).messages[0];
      if (quoted && req("WAWebMsgReply").canReplyMsg(quoted.unsafe ? quoted.unsafe() : quoted)) {
        extra = quoted.msgContextInfo(chat);
      }
    }
    let props = { id: key, ack: 0, body, from: meWid, to: chat.id, local: true, self: "out",
                  t: Math.floor(Date.now() / 1000), isNewMsg: true, type: "chat", ...extra };
    if (media) {
      const bytes = Uint8Array.from(atob(media.data), (c) => c.charCodeAt(0));
      const file = new File([bytes], media.filename || "file", { type: media.mimetype });
      const OpaqueData = req("WAWebMediaOpaqueData");
      const opaque = await (OpaqueData.default || OpaqueData).createFromData(file, media.mimetype);
      const prep = req("WAWebPrepRawMedia").prepRawMedia(opaque, { asDocument: !!media.asDocument });
      const data = await prep.waitForPrep();
      const mediaObject = req("WAWebMediaStorage").getOrCreateMediaObject(data.filehash);
      const mediaType = req("WAWebMmsMediaTypes").msgToMediaType({ type: data.type, isGif: data.isGif });
      if (!(data.mediaBlob instanceof (OpaqueData.default || OpaqueData))) data.mediaBlob = opaque;
      mediaObject.consolidate(data.toJSON());
      const uploaded = await req("WAWebMediaMmsV4Upload").uploadMedia({ mimetype: data.mimetype, mediaObject, mediaType });
      const entry = uploaded.mediaEntry;
      props = { ...props, ...data.toJSON(), type: data.type, body: "", caption: media.caption || undefined,
                directPath: entry.directPath, clientUrl: entry.mmsUrl, mediaKey: entry.mediaKey,
                filehash: data.filehash, size: entry.size || data.size, filename: media.filename };
    }
    const [msgPromise, sendPromise] = req("WAWebSendMsgChatAction").addAndSendMsgToChat(chat, props);
    await msgPromise;
    const result = await sendPromise;
    return { id: key._serialized, msg_id: key.id, result: result && result.messageSendResult };
  }

  async function listChats(limit) {
    const { Chat } = req("WAWebCollections");
    const chats = Chat.getModelsArray().slice(0, limit || undefined);
    return chats.map((c) => ({
      id: ser(c.id), name: c.formattedTitle || c.name || null, is_group: !!(c.isGroup || (c.id && c.id.server === "g.us")),
      unread: c.unreadCount || 0, t: c.t || null, archived: !!c.archive,
      last: (() => { const ms = c.msgs && c.msgs.getModelsArray ? c.msgs.getModelsArray() : [];
                     return ms.length ? messageView(ms[ms.length - 1]) : null; })(),
    }));
  }

  async function listContacts() {
    const { Contact } = req("WAWebCollections");
    return Contact.getModelsArray().filter((c) => c.id && c.id.server === "c.us").map((c) => ({
      id: ser(c.id), number: c.id.user, name: c.name || null, pushname: c.pushname || null,
      is_business: !!c.isBusiness, is_my_contact: !!c.isMyContact,
    }));
  }

  async function listGroups() {
    const { GroupMetadata } = req("WAWebCollections");
    return GroupMetadata.getModelsArray().map((g) => ({
      id: ser(g.id), subject: g.subject || null, desc: g.desc || null, owner: ser(g.owner), creation: g.creation || null,
      announce: !!g.announce, restrict: !!g.restrict,
      participants: (g.participants && g.participants.getModelsArray ? g.participants.getModelsArray() : g.participants || [])
        .map((p) => ({ id: ser(p.id), is_admin: !!p.isAdmin, is_super_admin: !!p.isSuperAdmin })),
    }));
  }

  window.__blazz = { numberExists, messageExists, downloadMedia, sendMessage, listChats, listContacts, listGroups, me,
                     state: () => req("WAWebSocketModel").Socket.state,
                     logout: () => req("WAWebSocketModel").Socket.logout() };
  if (!boot()) {
    const timer = setInterval(() => { if (boot()) clearInterval(timer); }, 200);
  }
})();
