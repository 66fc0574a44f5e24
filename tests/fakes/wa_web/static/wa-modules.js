// Fake WhatsApp Web, part 2: the modules `window.require(name)` returns (see SURFACE.md).
(function () {
  "use strict";
  const { Emitter, Wid, createWid, MsgKey, Model, Collection, idOf, hidden, hex } = window.__waCore;

  // Shared with app.js: the page connection, the signed-in user and the server API.
  const app = {
    conn: null, me: null, meLid: null, keys: null, lidMap: new Map(), pnMap: new Map(),
    // DEFAULT_BEHAVIOURS of world.py; the server sends the current ones at sync and on change
    behaviours: { decrypt_delay: 0.3, lid_senders: true, lid_sender_required: true, canonical_ids: true, echo: true, worker_key: false },
    async api(method, path, body) {
      const res = await fetch(path, {
        method, headers: body ? { "Content-Type": "application/json" } : {},
        body: body ? JSON.stringify(body) : undefined, cache: "no-store",
      });
      const data = await res.json().catch(() => ({}));
      if (!res.ok) { const err = new Error(data.message || `HTTP ${res.status}`); err.status = res.status; err.code = data.error; throw err; }
      return data;
    },
  };

  // ----- models ---------------------------------------------------------------------------
  class MsgModel extends Model {
    get isNotification() { return ["gp2", "notification", "notification_template", "e2e_notification", "protocol"].includes(this.type); }
    get isStatusV3() { return !!(this.id && this.id.remote && this.id.remote._serialized === "status@broadcast"); }
    get isEphemeral() { return false; }
    get mediaObject() { return this.__mediaObject; }
    msgContextInfo() {
      return { quotedMsg: this.serialize(), quotedStanzaID: this.id.id, quotedRemoteJid: this.id.remote,
               quotedParticipant: this.author || this.from };
    }
    getRawLinks() { return findLinks(this.caption || this.body || ""); }
  }

  class ChatModel extends Model {
    constructor(attrs) {
      super(attrs);
      hidden(this, "msgs", new Collection(MsgModel, "ChatMsgs"));
    }
    get groupMetadata() { return this.isGroup ? GroupMetadata.get(this.id) : undefined; }
    get contact() { return Contact.get(this.id); }
    get formattedTitle() { return this.name || (this.id && `+${this.id.user}`); }
    get isReadOnly() { return !!(this.groupMetadata && this.groupMetadata.announce); }
  }

  class ContactModel extends Model {
    get isMe() { return !!app.me && this.id._serialized === app.me._serialized; }
    get isUser() { return this.id.isUser(); }
    get isGroup() { return this.id.isGroup(); }
    get isWAContact() { return this.id.isUser(); }
    get userid() { return this.id.user; }
    get number() { return this.id.user; }
  }

  class ParticipantModel extends Model {}
  class GroupMetadataModel extends Model {
    constructor(attrs) {
      const { participants, ...rest } = attrs || {};
      super(rest);
      const coll = new Collection(ParticipantModel, "Participants");
      for (const p of participants || []) coll.add({ id: createWid(p.id), isAdmin: !!p.isAdmin, isSuperAdmin: !!p.isSuperAdmin });
      this.participants = coll;
    }
  }

  const Msg = new Collection(MsgModel, "Msg");
  const Chat = new Collection(ChatModel, "Chat");
  const Contact = new Collection(ContactModel, "Contact");
  const GroupMetadata = new Collection(GroupMetadataModel, "GroupMetadata");
  Msg.getMessagesById = async (ids) => ({ messages: (ids || []).map((id) => Msg.get(id)).filter(Boolean) });
  Msg.search = async (query, page, count, chatId) => {
    const q = String(query || "").toLowerCase();
    const hits = Msg.filter((m) => String(m.body || m.caption || "").toLowerCase().includes(q) &&
      (!chatId || idOf(m.id.remote) === idOf(chatId)));
    const size = count || 100, start = ((page || 1) - 1) * size;
    return { messages: hits.slice(start, start + size), eof: start + size >= hits.length };
  };
  Contact.find = async (id) => Contact.get(id) || Contact.add({ id: createWid(idOf(id)), isMyContact: false, type: "in" });
  GroupMetadata.find = async (id) => GroupMetadata.get(id);
  GroupMetadata.update = async (id) => GroupMetadata.get(id);
  Chat.find = async (id) => Chat.get(id) || (await findOrCreateLatestChat(createWid(idOf(id)))).chat;

  // ----- socket, connection, commands -------------------------------------------------------
  const Socket = new Model({ state: "UNLAUNCHED", hasSynced: false, stream: "DISCONNECTED" });
  hidden(Socket, "takeover", async () => { const r = await app.api("POST", "/api/takeover", { conn: app.conn }); app.onTakeover(r); });
  hidden(Socket, "logout", async () => app.logout("page"));
  hidden(Socket, "reconnect", async () => app.reconnect());
  hidden(Socket, "poke", () => {});

  const Conn = new Model({ ref: undefined, pushname: undefined, platform: undefined, battery: 87, plugged: true,
                           isSMB: false, phone: undefined });
  const Cmd = new Emitter();
  hidden(Cmd, "refreshQR", async () => app.api("POST", "/api/refresh-qr", { conn: app.conn }));
  hidden(Cmd, "markChatUnread", async (chat, unread) => chat.set({ unreadCount: unread ? -1 : 0 }));
  hidden(Cmd, "openChatBottom", async () => true);
  const OfflineMessageHandler = { progress: 0, getOfflineDeliveryProgress() { return this.progress; } };

  // ----- registration keys (QR fields 2-5) ---------------------------------------------------
  function encodeB64(buf) {
    const bytes = buf instanceof Uint8Array ? buf : new Uint8Array(buf);
    let s = ""; for (const b of bytes) s += String.fromCharCode(b);
    return btoa(s);
  }
  function decodeB64(text) { return Uint8Array.from(atob(text), (c) => c.charCodeAt(0)); }
  const waNoiseInfo = { async get() { return { staticKeyPair: { pubKey: decodeB64(app.keys.noise), privKey: new Uint8Array(32) } }; } };
  const waSignalStore = {
    async getRegistrationInfo() {
      return { registrationId: 4242, identityKeyPair: { pubKey: decodeB64(app.keys.identity), privKey: new Uint8Array(32) } };
    },
  };
  const getADVSecretKey = () => app.keys.adv;
  const DEVICE_PLATFORM = "1";

  // ----- chats and sending -------------------------------------------------------------------
  async function findOrCreateLatestChat(wid) {
    wid = createWid(wid);
    let chat = Chat.get(wid);
    // WhatsApp Web addresses users by LID since 2025: a phone-number chat needs the user's LID,
    // known from contacts, earlier messages or queryWidExists (toUserLidOrThrow).
    if (!chat && app.behaviours.canonical_ids && wid.server === "c.us" && !app.lidMap.has(wid.user) &&
        !(app.me && wid.user === app.me.user)) {
      throw new Error("No LID for user");
    }
    if (!chat) {
      const contact = Contact.get(wid);
      chat = Chat.add({ id: wid, name: contact && (contact.name || contact.pushname), t: Math.floor(Date.now() / 1000),
                        unreadCount: 0, archive: false, pin: 0, mute: { expiration: 0 }, isGroup: wid.isGroup(),
                        isLocked: false, endOfHistoryTransferType: 0 });
    }
    return { chat, created: false };
  }

  function addMessage(msg, opts) {
    const model = Msg.add(msg, opts);
    const chat = Chat.get(model.id.remote) || Chat.add({ id: model.id.remote, t: model.t, unreadCount: 0, archive: false,
      pin: 0, mute: { expiration: 0 }, isGroup: model.id.remote.isGroup(), isLocked: false, endOfHistoryTransferType: 0 });
    chat.msgs.add(model, { silent: !!(opts && opts.silent) });
    return { model, chat };
  }

  function mediaInfo(m) {
    if (!m.mimetype && !m.directPath && !m.filehash) return null;
    return { mimetype: m.mimetype, filename: m.filename, size: m.size, filehash: m.filehash,
             directPath: m.directPath, clientUrl: m.clientUrl, isViewOnce: !!m.isViewOnce };
  }

  // The sent message as the server keeps it for later syncs: ids flattened like incoming messages.
  function storable(model) {
    const out = model.serialize();
    for (const k of ["quotedMsg", "mediaData", "isNewMsg"]) delete out[k];
    out.id = { fromMe: model.id.fromMe, remote: model.id.remote._serialized, id: model.id.id,
               participant: model.id.participant ? model.id.participant._serialized : null };
    for (const k of ["from", "to", "author"]) if (model[k]) out[k] = idOf(model[k]);
    if (out.mentionedJidList) out.mentionedJidList = (model.mentionedJidList || []).map(idOf);
    if (out.quotedRemoteJid) out.quotedRemoteJid = idOf(model.quotedRemoteJid);
    if (out.quotedParticipant) out.quotedParticipant = idOf(model.quotedParticipant);
    return out;
  }

  function addAndSendMsgToChat(chat, props) {
    const attrs = {};
    for (const k of Object.keys(props)) if (typeof props[k] !== "function") attrs[k] = props[k];
    attrs.id = attrs.id instanceof MsgKey ? attrs.id : new MsgKey(attrs.id);
    for (const k of ["from", "to", "author"]) if (attrs[k]) attrs[k] = createWid(attrs[k]);
    delete attrs.mediaBlob;
    const meta = chat.isGroup ? GroupMetadata.get(chat.id) : undefined;
    if (app.behaviours.lid_sender_required && (chat.id.isLid() || (meta && meta.isLidAddressingMode)) &&
        idOf(attrs.from) !== idOf(app.meLid)) {
      throw new Error("a LID chat needs the own LID as sender");
    }
    Object.assign(attrs, { ack: attrs.ack === undefined ? 0 : attrs.ack, isNewMsg: true, local: true, self: "out", t: attrs.t || Math.floor(Date.now() / 1000) });
    const { model } = addMessage(attrs, app.behaviours.echo ? undefined : { silent: true });
    chat.set({ t: model.t, lastReceivedKey: model.id });
    const msgPromise = Promise.resolve(model);
    const sendPromise = app.api("POST", "/api/send", { conn: app.conn, msg: {
      id: model.id._serialized, msg_id: model.id.id, to: model.id.remote._serialized, body: model.body,
      type: model.type || "chat", caption: model.caption, quotedStanzaID: model.quotedStanzaID,
      mentionedJidList: (model.mentionedJidList || []).map(idOf), media: mediaInfo(model), t: model.t,
      raw: storable(model),
    } }).then((r) => { model.set({ ack: r.ack }); return { messageSendResult: r.ack < 0 ? "ERROR" : "OK", t: model.t }; },
              (err) => { model.set({ ack: -1 }); return { messageSendResult: "ERROR", error: String(err.message) }; });
    return [msgPromise, sendPromise];
  }

  async function sendSeen(arg) {
    const chat = arg && arg.chat ? arg.chat : arg;
    if (chat && chat.set) chat.set({ unreadCount: 0 });
    if (chat && chat.id) await app.api("POST", "/api/seen", { conn: app.conn, chat: idOf(chat.id) });  // the read receipt
    return true;
  }

  async function queryWidExists(wid) {
    wid = createWid(wid);
    if (!wid.isUser()) return { wid };
    const r = await app.api("GET", `/api/exists?number=${encodeURIComponent(wid.user)}`);
    if (!r.exists) return null;
    const user = createWid(`${r.user}@c.us`);
    app.lidMap.set(r.user, r.lid); app.pnMap.set(r.lid, r.user);  // now known locally
    return { wid: user, lid: createWid(`${r.lid}@lid`) };
  }

  // ----- media -----------------------------------------------------------------------------
  class OpaqueData {
    constructor(blob, mimetype) { hidden(this, "_blob", blob); this.type = mimetype || blob.type; this.size = blob.size; }
    static async createFromData(blob, mimetype) { return new OpaqueData(blob, mimetype); }
    url() { return (this._url = this._url || URL.createObjectURL(this._blob)); }
    autorelease() { if (this._url) { URL.revokeObjectURL(this._url); this._url = null; } }
    async arrayBuffer() { return this._blob.arrayBuffer(); }
    formData() { return this._blob; }
  }
  OpaqueData.default = OpaqueData;

  function mediaTypeOf(mimetype, opts) {
    if (opts.asDocument) return "document";
    if (opts.asSticker) return "sticker";
    if (opts.isPtt) return "ptt";
    const top = String(mimetype || "").split("/")[0];
    return ["image", "video", "audio"].includes(top) ? top : "document";
  }

  class MediaDataModel extends Model { toJSON() { const o = {}; for (const k of Object.keys(this)) o[k] = this[k]; return o; } }

  function prepRawMedia(opaque, opts) {
    opts = opts || {};
    const ready = (async () => {
      const bytes = await opaque.arrayBuffer();
      const filehash = encodeB64(await crypto.subtle.digest("SHA-256", bytes));
      const type = mediaTypeOf(opaque.type, opts);
      return new MediaDataModel({ type, mimetype: opaque.type, filehash, size: bytes.byteLength, mediaBlob: opaque,
        filename: opaque._blob && opaque._blob.name, mediaStage: "RESOLVED", isGif: !!opts.asGif && type === "video",
        isViewOnce: !!opts.isViewOnce });
    })();
    return {
      waitForPrep: () => ready,
      async sendToChat(chat, options) {
        const data = await ready;
        const entry = (await uploadMedia({ mimetype: data.mimetype, mediaObject: getOrCreateMediaObject(data.filehash) })).mediaEntry;
        const key = new MsgKey({ from: app.me, to: chat.id, id: await MsgKey.newId(), selfDir: "out" });
        const o = (options && options.options) || options || {};
        return addAndSendMsgToChat(chat, { ...data.toJSON(), directPath: entry.directPath, clientUrl: entry.mmsUrl,
          mediaKey: entry.mediaKey, id: key, from: app.me, to: chat.id, caption: o.caption, body: "", type: data.type });
      },
    };
  }

  const mediaObjects = new Map();
  function getOrCreateMediaObject(filehash) {
    if (!mediaObjects.has(filehash)) {
      const obj = new Model({ filehash, contentInfo: {} });
      hidden(obj, "consolidate", (json) => { obj.set(Object.fromEntries(Object.entries(json).filter(([k]) => k !== "mediaBlob"))); hidden(obj, "mediaBlob", json.mediaBlob); });
      hidden(obj, "resolveWhenConsolidated", async () => obj);
      mediaObjects.set(filehash, obj);
    }
    return mediaObjects.get(filehash);
  }

  async function uploadMedia({ mimetype, mediaObject }) {
    const blob = mediaObject.mediaBlob;
    const body = blob instanceof OpaqueData ? blob._blob : blob;
    const res = await fetch("/api/upload", { method: "POST", headers: { "Content-Type": mimetype || "application/octet-stream" }, body });
    if (!res.ok) throw new Error("media upload failed");
    const entry = await res.json();
    mediaObject.set({ size: entry.size });
    return { mediaEntry: entry };
  }

  async function downloadAndMaybeDecrypt({ directPath }) {
    const token = String(directPath || "").split("/").pop();
    const res = await fetch(`/media/${token}`);
    if (!res.ok) throw new Error(`media download failed: ${res.status}`);
    return res.arrayBuffer();
  }

  // ----- links, phone numbers -----------------------------------------------------------------
  function findLinks(text) {
    return (String(text || "").match(/\bhttps?:\/\/[^\s<>"']+/gi) || []).map((href) => ({ href, url: href, suspiciousCharacters: null }));
  }
  const findCC = (number) => { const d = String(number).replace(/\D/g, ""); return d.startsWith("1") ? "1" : d.slice(0, 2); };

  const contactGetters = {
    getIsMe: (c) => c.isMe, getIsUser: (c) => c.isUser, getIsGroup: (c) => c.isGroup,
    getIsWAContact: (c) => c.isWAContact, getUserid: (c) => c.userid, getVerifiedName: (c) => c.verifiedName,
    getVerifiedLevel: (c) => c.verifiedLevel, getStatusMute: (c) => !!c.statusMute, getName: (c) => c.name,
    getShortName: (c) => c.shortName, getPushname: (c) => c.pushname, getIsEnterprise: (c) => !!c.isEnterprise,
    getIsBusiness: (c) => !!c.isBusiness, getIsMyContact: (c) => !!c.isMyContact,
  };

  const MODULES = {
    WAWebSocketModel: { Socket },
    WAWebConnModel: { Conn },
    WAWebCmd: { Cmd },
    WAWebOfflineHandler: { OfflineMessageHandler },
    WABase64: { encodeB64, decodeB64 },
    WAWebUserPrefsInfoStore: { waNoiseInfo },
    WAWebSignalStoreApi: { waSignalStore },
    WAWebAdvSignatureApi: { getADVSecretKey },
    WAWebUserPrefsMultiDevice: { getADVSecretKey },
    WAWebCompanionRegClientUtils: { DEVICE_PLATFORM },
    WAWebAltDeviceLinkingApi: {
      setPairingType(type) { app.pairingType = type; },
      async initializeAltDeviceLinking() { return true; },
      async startAltLinkingFlow(phone) {
        const r = await app.api("POST", "/api/pair-code", { conn: app.conn, phone: String(phone) });
        app.showPairingCode(r.code);
        return r.code;
      },
    },
    WAWebCollections: { Msg, Chat, Contact, GroupMetadata, Label: new Collection(Model, "Label"),
                        Blocklist: new Collection(Model, "Blocklist"), WAWebCallCollection: new Collection(Model, "Call") },
    WAWebGroupMetadataCollection: Object.assign(GroupMetadata, { default: GroupMetadata }),
    WAWebWidFactory: {
      createWid, createUserWid: (user, server) => createWid(`${user}@${server || "c.us"}`),
      asUserWidOrThrow(w) { const wid = createWid(w); if (!wid.isUser()) throw new Error("wid error: not a user wid"); return wid; },
      isWidlike: (w) => { try { createWid(w); return true; } catch (e) { return false; } },
    },
    WAWebQueryExistsJob: { queryWidExists },
    WAWebFindChatAction: { findOrCreateLatestChat },
    WAWebSendMsgChatAction: { addAndSendMsgToChat },
    WAWebMsgKey: MsgKey,
    WAWebUserPrefsMeUser: {
      getMaybeMePnUser: () => app.me || null, getMaybeMeLidUser: () => app.meLid || null,
      getMeUser: () => { if (!app.me) throw new Error("no me user"); return app.me; },
      isMeAccount: (w) => !!app.me && (idOf(w) === app.me._serialized || (app.meLid && idOf(w) === app.meLid._serialized)),
    },
    WAWebChatGetters: { getIsNewsletter: (c) => c.id.isNewsletter(), getIsBroadcast: (c) => c.id.isBroadcast(),
                        getIsGroup: (c) => c.id.isGroup() },
    WAWebUpdateUnreadChatAction: { sendSeen },
    WAWebStreamModel: { Stream: { available: false, markAvailable() { this.available = true; }, markUnavailable() { this.available = false; } } },
    WAWebChatLoadMessages: { async loadEarlierMsgs() { return []; } },
    WAWebContactGetters: contactGetters,
    WAWebFrontendContactGetters: { getIsMyContact: contactGetters.getIsMyContact },
    WAWebApiContact: {
      getCurrentLid: (w) => {
        const u = createWid(w);
        if (u.isLid()) return u;
        const known = app.lidMap.get(u.user);
        if (known) return createWid(`${known}@lid`);
        return app.behaviours.canonical_ids ? null : createWid(`${app.lidFor(u.user)}@lid`);
      },
      getPhoneNumber: (w) => { const u = createWid(w); if (!u.isLid()) return u; const pn = app.pnMap.get(u.user); return pn ? createWid(`${pn}@c.us`) : undefined; },
    },
    WALinkify: { findLink: (t) => findLinks(t)[0] || null, findLinks },
    WAWebMiscBrowserUtils: { info: () => ({ os: "Linux", name: "Chrome", version: navigator.userAgent.match(/Chrome\/([\d.]+)/)?.[1] || "" }) },
    WAWebMediaOpaqueData: OpaqueData,
    WAWebPrepRawMedia: { prepRawMedia },
    WAWebMediaStorage: { getOrCreateMediaObject },
    WAWebMmsMediaTypes: { msgToMediaType: ({ type, isGif }) => (isGif ? "gif" : type === "ptt" ? "ptt" : type), castToV4: (t) => t },
    WAWebMediaMmsV4Upload: { uploadMedia },
    WAWebMediaDataUtils: { shouldUseMediaCache: () => false },
    WAWebMediaInMemoryBlobCache: { InMemoryMediaBlobCache: { put() {}, get() { return undefined; }, has() { return false; } } },
    WAWebDownloadManager: { downloadManager: { downloadAndMaybeDecrypt } },
    WAWebMsgReply: { canReplyMsg: (m) => !!m && !m.isNotification },
    WAWebGetEphemeralFieldsMsgActionsUtils: { getEphemeralFields: () => ({}) },
    WAWebLinkPreviewChatAction: { async getLinkPreview() { return null; } },
    WAWebPresenceChatAction: { async sendPresenceAvailable() { return true; }, async sendPresenceUnavailable() { return true; } },
    WAWebGroupQueryJob: { async queryAndUpdateGroupMetadataById({ id }) { return GroupMetadata.get(id); } },
    WAWebPhoneUtils: { formattedPhoneNumber: (n) => `+${String(n).replace(/\D/g, "")}` },
    WAPhoneFindCC: { findCC },
  };

  for (const name of window.__waDropped || []) delete MODULES[name];
  app.dropModule = (name) => { delete MODULES[name]; };

  window.require = function (name) {
    const mod = MODULES[name];
    if (!mod) throw new Error(`Requiring unknown module "${name}"`);
    return mod;
  };
  window.__d = window.__d || function () {};
  window.__waApp = app;
  app.models = { MsgModel, ChatModel, ContactModel, GroupMetadataModel };
  app.collections = { Msg, Chat, Contact, GroupMetadata };
  app.Socket = Socket; app.Conn = Conn; app.Cmd = Cmd; app.Offline = OfflineMessageHandler;
  app.addMessage = addMessage;
  app.lidFor = (user) => app.lidMap.get(String(user)) || ("1" + String(user).padStart(14, "0")).slice(-15);
  app.hex = hex;
})();
