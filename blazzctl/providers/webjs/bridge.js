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

  // The lease deadline (wall-clock seconds) the daemon pushes after each renewal. Past it the
  // page leaves WhatsApp Web by itself, which closes its connection to WhatsApp: a browser never
  // drives an account after its lease, even while the daemon's Python is frozen (SIGSTOP, GC, VM).
  if (location.protocol !== "about:") {
    const fence = setInterval(() => {
      const deadline = window.__blazzDeadline;
      if (deadline && Date.now() / 1000 > deadline) {
        clearInterval(fence);
        emit("fenced", { deadline });
        location.replace("about:blank");
      }
    }, 250);
  }

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

  // A user's two ids: its LID and its phone-number id, each when the page knows it
  // (WAWebApiContact's mapping, else the contact's phoneNumber).
  function idsOf(wid) {
    const text = ser(wid);
    if (!text || !(text.endsWith("@lid") || text.endsWith("@c.us"))) return { lid: null, phone: null };
    const api = tryReq("WAWebApiContact");
    let w = wid;
    try { if (typeof w === "string") w = req("WAWebWidFactory").createWid(w); } catch (e) { return { lid: null, phone: null }; }
    const ask = (fn) => { try { return api && api[fn] ? ser(api[fn](w)) : null; } catch (e) { return null; } };
    if (text.endsWith("@lid")) {
      let phone = ask("getPhoneNumber");
      if (!phone) {
        const { Contact } = req("WAWebCollections");
        const c = Contact.get(text);
        phone = c && c.phoneNumber ? ser(c.phoneNumber) : null;
      }
      return { lid: text, phone: phone && phone.endsWith("@c.us") ? phone : null };
    }
    const lid = ask("getCurrentLid");
    return { lid: lid && lid.endsWith("@lid") ? lid : null, phone: text };
  }

  function bodyOf(m) { return m.caption !== undefined && m.directPath ? m.caption : (m.body || ""); }

  function messageView(m) {
    const id = m.id || {};
    const body = bodyOf(m);
    const sender = id.fromMe ? null : (m.author || m.from);
    const ids = idsOf(sender);
    return {
      id: ser(id), msg_id: id.id || null, from_me: !!id.fromMe, remote: ser(id.remote),
      from: ser(m.from), to: ser(m.to), author: ser(m.author), type: m.type || "chat", body,
      t: m.t || null, ack: m.ack === undefined ? null : m.ack, has_media: !!m.directPath,
      mimetype: m.mimetype || null, filename: m.filename || null, size: m.size || null,
      quoted_id: m.quotedStanzaID || null, is_status: !!(m.isStatusV3 || ser(id.remote) === "status@broadcast"),
      lat: m.lat === undefined ? null : m.lat, lng: m.lng === undefined ? null : m.lng, loc: m.loc || null,
      vcards: (m.vcardList || []).map((v) => v.vcard), reaction: m.reactionText || null,
      notify_name: m.notifyName || null, sender: ser(sender), sender_lid: ids.lid, sender_phone: ids.phone,
    };
  }

  const state = { started: false, qrShown: 0, pairing: false };

  // Every module the bridge reads. A WhatsApp Web release that renamed one fails the account at
  // page load, naming them, instead of failing each call later.
  const MODULES = ["WAWebSocketModel", "WAWebConnModel", "WAWebCmd", "WAWebCollections", "WABase64",
    "WAWebUserPrefsInfoStore", "WAWebSignalStoreApi", "WAWebCompanionRegClientUtils", "WAWebAltDeviceLinkingApi",
    "WAWebUserPrefsMeUser", "WAWebWidFactory", "WAWebQueryExistsJob", "WAWebFindChatAction",
    "WAWebSendMsgChatAction", "WAWebMsgKey", "WAWebMsgReply", "WAWebApiContact", "WAWebMediaOpaqueData",
    "WAWebPrepRawMedia", "WAWebMediaStorage", "WAWebMmsMediaTypes", "WAWebMediaMmsV4Upload", "WAWebDownloadManager",
    "WAWebUpdateUnreadChatAction"];
  const ANY_OF = [["WAWebAdvSignatureApi", "WAWebUserPrefsMultiDevice"]];

  function missingModules() {
    const missing = MODULES.filter((name) => !tryReq(name));
    for (const names of ANY_OF) if (!names.some(tryReq)) missing.push(names.join("|"));
    return missing;
  }

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
    const missing = missingModules();
    if (missing.length) { emit("incompatible", { version: window.Debug.VERSION, modules: missing }); return; }
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
    // A new message may arrive as `ciphertext` (not decrypted yet): it is reported when its type
    // changes (once); Python stores a placeholder only if that takes longer than decrypt_timeout.
    const undecrypted = new Set();
    Msg.on("add", (m) => {
      if (!m.isNewMsg) return;
      const id = ser(m.id);
      if (m.type !== "ciphertext") { emit("message", messageView(m)); return; }
      if (undecrypted.has(id)) return;  // delivered again while still undecrypted
      undecrypted.add(id);
      emit("ciphertext", messageView(m));
      m.once("change:type", () => { undecrypted.delete(id); emit("message", messageView(m)); });
    });
    // Decrypting and revoking change the body too: only a body change of a readable message is an edit.
    Msg.on("change:body change:caption", (m) => {
      const id = ser(m.id);
      if (undecrypted.has(id) || ["ciphertext", "revoked"].includes(m.type)) return;
      emit("edit", { id, body: bodyOf(m), t: m.latestEditSenderTimestampMs ? Math.floor(m.latestEditSenderTimestampMs / 1000) : null });
    });
    Msg.on("change:type", (m, type) => { if (type === "revoked") emit("revoke", { id: ser(m.id) }); });
    Msg.on("change:ack", (m, ack) => emit("ack", { id: ser(m.id), ack }));
    onState(Socket.state);
    if (Socket.hasSynced && Socket.state === "CONNECTED") emit("synced", me());
  }

  function boot() {
    if (window.Debug && window.Debug.VERSION && typeof window.require === "function") {
      try { req("WAWebSocketModel"); } catch (e) { return false; }
      // Attaching fails when a build changed a module's members: as incompatible as a missing module.
      try { attach(); } catch (e) { emit("incompatible", { version: window.Debug.VERSION, modules: [], error: String(e && e.message || e) }); }
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

  // The id WhatsApp knows a number by (queryWidExists: it may differ from the typed number,
  // and asking makes its LID known to the page), or null when it is not on WhatsApp.
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
    // A chat addressed by LID (or a group in LID addressing mode) takes our own LID as sender.
    const prefs = req("WAWebUserPrefsMeUser");
    const isGroup = !!(chat.isGroup || (chat.id && chat.id.server === "g.us"));
    const meta = isGroup ? (chat.groupMetadata || req("WAWebCollections").GroupMetadata.get(chat.id)) : null;
    const lidChat = (chat.id && chat.id.server === "lid") || !!(meta && meta.isLidAddressingMode);
    const meWid = (lidChat && prefs.getMaybeMeLidUser()) || prefs.getMaybeMePnUser();
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
    // The daemon's lease deadline: a daemon frozen after its own check must not send late. A
    // renewal during a long media upload pushes a later one (window.__blazzDeadline).
    const deadline = Math.max(args.deadline || 0, window.__blazzDeadline || 0);
    if (deadline && Date.now() / 1000 > deadline) {
      throw new Error("blazz: lease deadline passed");
    }
    const [msgPromise, sendPromise] = req("WAWebSendMsgChatAction").addAndSendMsgToChat(chat, props);
    await msgPromise;
    const result = await sendPromise;
    const sent = req("WAWebCollections").Msg.get(key._serialized);
    return { id: key._serialized, msg_id: key.id, chat: ser(chat.id), result: result && result.messageSendResult,
             ack: sent && sent.ack !== undefined ? sent.ack : null, t: sent && sent.t ? sent.t : null };
  }

  // A read receipt for the chat, as wwebjs sends it: available, sendSeen, unavailable again.
  async function sendSeen(jid) {
    const chat = await chatFor(jid);
    if (!chat) throw new Error(`no chat for ${jid}`);
    const stream = tryReq("WAWebStreamModel");
    if (stream && stream.Stream) stream.Stream.markAvailable();
    try {
      await req("WAWebUpdateUnreadChatAction").sendSeen({ chat, threadId: undefined });
    } finally {
      if (stream && stream.Stream) stream.Stream.markUnavailable();
    }
    return true;
  }

  // The catch-up after a session starts: what the page holds newer than `since` (epoch seconds),
  // decrypted messages only (a placeholder completes itself through change:type), at most 2000.
  function recentMessages(since) {
    const { Chat } = req("WAWebCollections");
    const out = [];
    for (const c of Chat.getModelsArray()) {
      const ms = c.msgs && c.msgs.getModelsArray ? c.msgs.getModelsArray() : [];
      for (const m of ms) {
        if ((m.t || 0) > since && m.type !== "ciphertext") out.push(messageView(m));
      }
    }
    out.sort((a, b) => (a.t || 0) - (b.t || 0));
    return out.slice(-2000);
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
    return Contact.getModelsArray().filter((c) => c.id && ["c.us", "lid"].includes(c.id.server)).map((c) => {
      const ids = idsOf(c.id);
      return { id: ser(c.id), number: ids.phone ? ids.phone.split("@")[0] : null, lid: ids.lid, phone: ids.phone,
               name: c.name || null, pushname: c.pushname || null, is_business: !!c.isBusiness,
               is_my_contact: !!c.isMyContact };
    });
  }

  async function listGroups() {
    const { GroupMetadata } = req("WAWebCollections");
    return GroupMetadata.getModelsArray().map((g) => ({
      id: ser(g.id), subject: g.subject || null, desc: g.desc || null, owner: ser(g.owner), creation: g.creation || null,
      announce: !!g.announce, restrict: !!g.restrict,
      participants: (g.participants && g.participants.getModelsArray ? g.participants.getModelsArray() : g.participants || [])
        .map((p) => { const ids = idsOf(p.id);
                      return { id: ser(p.id), lid: ids.lid, phone: ids.phone, is_admin: !!p.isAdmin,
                               is_super_admin: !!p.isSuperAdmin }; }),
    }));
  }

  window.__blazz = { numberExists, messageExists, downloadMedia, sendMessage, sendSeen, listChats, listContacts, listGroups,
                     recentMessages, me,
                     state: () => req("WAWebSocketModel").Socket.state,
                     logout: () => req("WAWebSocketModel").Socket.logout() };
  if (!boot()) {
    const timer = setInterval(() => { if (boot()) clearInterval(timer); }, 200);
  }
})();
