// Fake WhatsApp Web, part 3: boot, the stored login, the server connection and a tiny UI.
(function () {
  "use strict";
  const app = window.__waApp;
  const { createWid, MsgKey } = window.__waCore;
  const { Msg, Chat, Contact, GroupMetadata } = app.collections;
  const { encodeB64, decodeB64 } = window.require("WABase64");
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

  window.Debug = { VERSION: "2.3000.1017054665" };

  // ----- the login: a non-extractable AES-GCM key in IndexedDB, the data it encrypts in localStorage
  const DB_NAME = "wawc_db_enc", STORE = "keys", LOGIN_KEY = "WASession";

  function idb(mode, fn) {
    return new Promise((resolve, reject) => {
      const open = indexedDB.open(DB_NAME, 1);
      open.onupgradeneeded = () => open.result.createObjectStore(STORE);
      open.onerror = () => reject(open.error);
      open.onsuccess = () => {
        const db = open.result, tx = db.transaction(STORE, mode), req = fn(tx.objectStore(STORE));
        tx.oncomplete = () => { db.close(); resolve(req && req.result); };
        tx.onerror = () => { db.close(); reject(tx.error); };
      };
    });
  }

  async function storageKey(create) {
    let key = await idb("readonly", (s) => s.get("main"));
    if (!key && create) {
      key = await crypto.subtle.generateKey({ name: "AES-GCM", length: 256 }, false, ["encrypt", "decrypt"]);
      await idb("readwrite", (s) => s.put(key, "main"));
    }
    return key;
  }

  // Behaviour `worker_key`: a key made in a Web Worker (no init script runs there), kept in IndexedDB.
  let workerKeyStored = false;
  async function storeWorkerKey() {
    if (workerKeyStored) return;
    workerKeyStored = true;
    const src = "onmessage = async () => postMessage(await crypto.subtle.generateKey(" +
                "{ name: 'AES-GCM', length: 128 }, false, ['encrypt']));";
    const worker = new Worker(URL.createObjectURL(new Blob([src], { type: "text/javascript" })));
    const key = await new Promise((resolve) => { worker.onmessage = (e) => resolve(e.data); worker.postMessage(0); });
    worker.terminate();
    await new Promise((resolve, reject) => {
      const open = indexedDB.open("wawc_worker", 1);
      open.onupgradeneeded = () => open.result.createObjectStore("keys");
      open.onerror = () => reject(open.error);
      open.onsuccess = () => {
        const db = open.result, tx = db.transaction("keys", "readwrite");
        tx.objectStore("keys").put(key, "worker");
        tx.oncomplete = () => { db.close(); resolve(); };
        tx.onerror = () => { db.close(); reject(tx.error); };
      };
    });
  }

  async function saveLogin(login) {
    const key = await storageKey(true);
    const iv = crypto.getRandomValues(new Uint8Array(12));
    const ct = await crypto.subtle.encrypt({ name: "AES-GCM", iv }, key, new TextEncoder().encode(JSON.stringify(login)));
    localStorage.setItem(LOGIN_KEY, `${encodeB64(iv)}.${encodeB64(ct)}`);
    localStorage.setItem("last-wid-md", JSON.stringify(`${login.phone}:1@c.us`));
  }

  async function loadLogin() {
    const raw = localStorage.getItem(LOGIN_KEY);
    if (!raw) return null;
    try {
      const key = await storageKey(false);
      if (!key) return null;
      const [iv, ct] = raw.split(".").map(decodeB64);
      return JSON.parse(new TextDecoder().decode(await crypto.subtle.decrypt({ name: "AES-GCM", iv }, key, ct)));
    } catch (err) {
      console.warn("the stored login cannot be read:", err);
      return null;
    }
  }

  async function wipeLogin() {
    localStorage.removeItem(LOGIN_KEY);
    localStorage.removeItem("last-wid-md");
    try { await idb("readwrite", (s) => s.delete("main")); } catch (err) { /* nothing stored */ }
  }

  const freshKeys = () => {
    const k = () => encodeB64(crypto.getRandomValues(new Uint8Array(32)));
    return { noise: k(), identity: k(), adv: k() };
  };

  // ----- data from the server into the collections ---------------------------------------------
  function msgAttrs(m, isNewMsg) {
    const { id, from, to, author, quotedStanzaID, quotedRemoteJid, quotedParticipant, ...rest } = m;
    const key = new MsgKey({ fromMe: id.fromMe, remote: id.remote, id: id.id, participant: id.participant || undefined });
    const attrs = { ...rest, id: key, from: createWid(from), to: createWid(to), isNewMsg, self: id.fromMe ? "out" : "in",
                    star: false, broadcast: false, isForwarded: false, forwardingScore: 0, mentionedJidList: [] };
    if (author) attrs.author = createWid(author);
    if (quotedStanzaID) {
      const chat = Chat.get(key.remote);
      const quoted = chat && chat.msgs.filter((q) => q.id.id === quotedStanzaID)[0];
      const participant = quotedParticipant || (quoted && (quoted.author || quoted.from));
      Object.assign(attrs, { quotedStanzaID, quotedRemoteJid: key.remote,
                             quotedParticipant: participant ? createWid(participant) : undefined,
                             quotedMsg: quoted ? { type: quoted.type, body: quoted.body } : { type: "chat", body: "" } });
    }
    if (attrs.directPath) attrs.mediaData = { mediaStage: "RESOLVED" };
    return attrs;
  }

  function addGroup(g) {
    if (GroupMetadata.get(g.id)) return;
    GroupMetadata.add({ id: createWid(g.id), subject: g.subject, owner: createWid(g.owner), creation: g.creation,
                        desc: g.desc, descId: app.hex(8), announce: !!g.announce, restrict: !!g.restrict,
                        memberAddMode: false, membershipApprovalRequests: [], isLidAddressingMode: !!g.isLidAddressingMode,
                        participants: g.participants });
  }

  function addChat(c) {
    const id = createWid(c.id);
    return Chat.get(id) || Chat.add({ id, name: c.name, t: c.t, unreadCount: c.unreadCount || 0, archive: false, pin: 0,
                                      mute: { expiration: 0 }, isGroup: id.isGroup(), isLocked: false,
                                      endOfHistoryTransferType: 0 });
  }

  function populate(data) {
    for (const c of data.contacts) {
      const user = c.id.split("@")[0];
      if (c.lid) { app.lidMap.set(user, c.lid.split("@")[0]); app.pnMap.set(c.lid.split("@")[0], user); }
      if (!Contact.get(c.id)) {
        Contact.add({ id: createWid(c.id), name: c.name || undefined, shortName: c.shortName, pushname: c.pushname,
                      isMyContact: !!c.isMyContact, isBusiness: !!c.isBusiness, isEnterprise: !!c.isEnterprise,
                      type: "in", labels: [], verifiedLevel: 0, statusMute: false });
      }
    }
    if (!Contact.get(app.me)) Contact.add({ id: app.me, pushname: data.pushname, isMyContact: true, type: "in", labels: [] });
    data.groups.forEach(addGroup);
    data.chats.forEach(addChat);
    for (const m of data.messages) {
      if (Msg.get(`${m.id.fromMe}_${m.id.remote}_${m.id.id}` + (m.id.participant ? `_${m.id.participant}` : ""))) continue;
      const { model, chat } = app.addMessage(msgAttrs(m, false));
      const last = chat.lastReceivedKey && Msg.get(chat.lastReceivedKey);
      if (!last || model.t >= last.t) chat.set({ lastReceivedKey: model.id }, { silent: true });
      if (!chat.t || model.t > chat.t) chat.set({ t: model.t }, { silent: true });
    }
  }

  function ballast(mb) {
    // "script heap" weight for memory benchmarks: plain JS arrays of doubles, about 1 MB each
    window.__waBallast = [];
    for (let i = 0; i < Math.round(mb || 0); i++) window.__waBallast.push(Array.from({ length: 131072 }, (_, j) => i + j + 0.5));
  }

  // ----- connection lifecycle ------------------------------------------------------------------
  async function becomeConnected(login, freshlyLinked) {
    app.me = createWid(`${login.phone}@c.us`);
    if (freshlyLinked) app.Socket.set({ state: "PAIRING" });
    let data;
    try {
      data = await app.api("GET", `/api/sync?conn=${app.conn}`);
    } catch (err) {
      if (err.status === 401) return loggedOut("phone");
      throw err;
    }
    app.meLid = createWid(`${data.lid}@lid`);
    if (data.behaviours) app.behaviours = data.behaviours;
    if (app.behaviours.worker_key) storeWorkerKey();
    app.lidMap.set(login.phone, data.lid);
    app.pnMap.set(data.lid, login.phone);
    app.Conn.set({ pushname: data.pushname, platform: data.platform });
    app.Socket.set({ state: "CONNECTED", stream: "CONNECTED" });
    render();
    for (const percent of [0, 50]) { app.Offline.progress = percent; app.Cmd.trigger("offline_progress_update_from_bridge"); await sleep(100); }
    populate(data);
    ballast(data.heap_mb);
    app.Offline.progress = 100;
    app.Cmd.trigger("offline_progress_update_from_bridge");
    await sleep(200);
    if (data.stall) return;  // stuck at the loading screen (control: stall-sync)
    app.Socket.set({ hasSynced: true });
    render();
  }

  async function loggedOut(source) {
    app.Cmd.trigger(source === "phone" ? "logout_from_bridge" : "logout");
    await wipeLogin();
    app.stopped = true;
    setTimeout(() => location.replace("/?post_logout=1"), 300);
    return "stop";
  }

  app.logout = async () => {
    try { await app.api("POST", "/api/logout", { conn: app.conn }); } catch (err) { console.warn("logout:", err); }
    return loggedOut("page");
  };
  app.onTakeover = (r) => { app.deviceAfter = Math.max(app.deviceAfter, r.device_after); app.Socket.set({ state: "CONNECTED" }); };
  app.reconnect = async () => {
    if (!app.me) return location.reload();
    app.Socket.set({ state: "OPENING" });
    await sleep(200);
    app.Socket.set({ state: "CONNECTED" });
  };
  app.showPairingCode = (code) => { document.getElementById("code").textContent = `${code.slice(0, 4)}-${code.slice(4)}`; };

  function learn(mapping) {
    if (!mapping) return;
    const lid = mapping.lid.split("@")[0], pn = mapping.pn.split("@")[0];
    app.lidMap.set(pn, lid); app.pnMap.set(lid, pn);
    const contact = Contact.get(mapping.lid);
    if (contact) contact.set({ phoneNumber: createWid(mapping.pn) });
  }

  // The envelope a `ciphertext` message has before it decrypts; everything else arrives with `change:type`.
  const ENVELOPE = ["id", "from", "to", "author", "t", "ack", "isNewMsg", "self", "notifyName", "star", "broadcast",
                    "isForwarded", "forwardingScore", "mentionedJidList"];
  app.pendingDecrypt = new Map();

  function decryptNow(id) {
    const pending = app.pendingDecrypt.get(id), model = Msg.get(id);
    if (!pending || !model) return;
    app.pendingDecrypt.delete(id);
    const { type, ...rest } = pending;
    model.set({ ...rest, type });  // `type` last: change:type fires once the rest is in place
  }

  function incoming(m, group, mapping, decryptAfter) {
    if (group) addGroup(group);
    learn(mapping);
    const serialized = `false_${m.id.remote}_${m.id.id}` + (m.id.participant ? `_${m.id.participant}` : "");
    const existing = Msg.get(serialized);
    addChat({ id: m.id.remote, name: m.notifyName, t: m.t, unreadCount: 0 });
    const sender = m.author || m.from;
    if (sender && !Contact.get(sender)) {
      Contact.add({ id: createWid(sender), pushname: m.notifyName, isMyContact: false, type: "in", labels: [],
                    phoneNumber: mapping ? createWid(mapping.pn) : undefined });
    }
    let attrs = msgAttrs(m, true);
    if (!existing && decryptAfter !== 0 && decryptAfter !== undefined) {
      const envelope = {}, rest = {};
      for (const [k, v] of Object.entries(attrs)) (ENVELOPE.includes(k) ? envelope : rest)[k] = v;
      app.pendingDecrypt.set(serialized, rest);
      attrs = { ...envelope, type: "ciphertext" };
      if (decryptAfter > 0) setTimeout(() => decryptNow(serialized), decryptAfter * 1000);
    }
    const { model, chat } = app.addMessage(attrs, existing ? { redeliver: true } : undefined);
    chat.set({ t: model.t, lastReceivedKey: model.id, unreadCount: (chat.unreadCount || 0) + 1 });
  }

  async function handle(ev) {
    switch (ev.type) {
      case "ref": app.Conn.set({ ref: ev.ref }); if (ev.state) app.Socket.set({ state: ev.state }); break;
      case "state": app.Socket.set({ state: ev.state }); break;
      case "linked": {
        app.Conn.set({ ref: undefined });
        const login = { token: ev.token, phone: ev.phone, pushname: ev.pushname, keys: app.keys };
        await saveLogin(login);
        await becomeConnected(login, true);
        break;
      }
      case "message": incoming(ev.message, ev.group, ev.mapping, ev.decrypt_after); break;
      case "decrypt": decryptNow(ev.id); break;
      case "edit": {  // the edit markers first, so a listener of change:body sees them
        const m = Msg.get(ev.id);
        if (m) m.set({ latestEditSenderTimestampMs: Date.now(), ...(m.directPath ? { caption: ev.body } : { body: ev.body }) });
        break;
      }
      case "revoke": { const m = Msg.get(ev.id); if (m) m.set({ body: "", caption: undefined, type: "revoked" }); break; }
      case "lid-map": learn(ev); break;
      case "behaviours": app.behaviours = ev.behaviours; if (app.behaviours.worker_key) storeWorkerKey(); break;
      case "drop-module": app.dropModule(ev.module); break;
      case "ack": { const m = Msg.get(ev.id); if (m) m.set({ ack: ev.ack }); break; }
      case "logout": return loggedOut("phone");
      case "conflict": app.Socket.set({ state: "CONFLICT" }); break;
      case "reload": app.stopped = true; location.reload(); return "stop";
      case "resync": populate(await app.api("GET", `/api/sync?conn=${app.conn}`)); break;
      default: console.warn("unknown server event", ev);
    }
    render();
    return undefined;
  }

  async function pollLoop() {
    let failures = 0;
    while (!app.stopped) {
      let events;
      try {
        events = (await app.api("GET", `/api/poll?conn=${app.conn}&after=${app.after}&device_after=${app.deviceAfter}`)).events;
      } catch (err) {
        if (err.status === 404) { app.stopped = true; location.reload(); return; }
        failures += 1;
        if (app.Socket.state === "CONNECTED") { app.lostConnection = true; app.Socket.set({ state: "OPENING" }); }
        await sleep(Math.min(5000, 500 * failures));
        continue;
      }
      if (app.lostConnection) { app.lostConnection = false; app.Socket.set({ state: "CONNECTED" }); }
      failures = 0;
      for (const ev of events) {
        if (ev.stream === "device") app.deviceAfter = Math.max(app.deviceAfter, ev.seq);
        else app.after = Math.max(app.after, ev.seq);
        let outcome;
        try { outcome = await handle(ev); } catch (err) { console.error("handling", ev.type, "failed:", err); }
        if (outcome === "stop") return;
      }
    }
  }

  // Leaving the page closes WhatsApp's connection at once (a WebSocket ends with its document).
  addEventListener("pagehide", () => {
    if (app.conn) navigator.sendBeacon("/api/bye", JSON.stringify({ conn: app.conn }));
  });

  async function boot() {
    app.Socket.set({ state: "OPENING" });
    const login = await loadLogin();
    app.keys = login ? login.keys : freshKeys();
    let r;
    for (let attempt = 1; ; attempt++) {
      try { r = await app.api("POST", "/api/boot", { keys: app.keys, token: login ? login.token : null, version: window.Debug.VERSION }); break; }
      catch (err) { await sleep(Math.min(5000, 500 * attempt)); }
    }
    if (r.state === "DEPRECATED_VERSION") {  // the server refuses this build: the page asks for an update
      app.Socket.set({ state: "DEPRECATED_VERSION" });
      render();
      return;
    }
    app.conn = r.conn;
    app.after = r.after;          // cursor of this page connection's events (refs, conflict, reload, ...)
    app.deviceAfter = r.device_after;  // cursor of the linked device's events (messages, acks, logout)
    if (r.state === "CONNECTED") {
      await becomeConnected(login, false);
    } else {
      if (login) await wipeLogin();
      app.Conn.set({ ref: r.ref });
      app.Socket.set({ state: "UNPAIRED" });
    }
    render();
    pollLoop();
  }

  // ----- a tiny UI (the surface is window.require, not the DOM) --------------------------------
  function render() {
    const state = app.Socket.state;
    document.getElementById("state").textContent = state + (app.Socket.hasSynced ? " (synced)" : "");
    const qr = document.getElementById("qr");
    const unpaired = state === "UNPAIRED" || state === "UNPAIRED_IDLE";
    qr.hidden = !unpaired;
    if (unpaired && app.Conn.ref) {
      qr.setAttribute("data-ref", app.Conn.ref);
      const reg = window.require("WAWebCompanionRegClientUtils");
      qr.textContent = [app.Conn.ref, app.keys.noise, app.keys.identity, app.keys.adv, reg.DEVICE_PLATFORM].join(",");
    }
    document.getElementById("me").textContent = app.me ? `+${app.me.user} · ${Chat.length} chats · ${Msg.length} messages` : "";
    document.getElementById("ready").hidden = !app.Socket.hasSynced;
  }
  app.Conn.on("change:ref", render);

  boot().catch((err) => { console.error("boot failed", err); document.getElementById("state").textContent = `boot failed: ${err}`; });
})();
