// Fake WhatsApp Web, part 1: events, models, collections, Wid and MsgKey.
// Models keep their attributes as own enumerable properties (so `{...model}` and
// Playwright's serialisation see them); bookkeeping lives in non-enumerable fields.
(function () {
  "use strict";
  const hidden = (obj, key, value) =>
    Object.defineProperty(obj, key, { value, enumerable: false, writable: true, configurable: true });

  class Emitter {
    constructor() { hidden(this, "__ev", new Map()); }
    on(events, cb, ctx) {
      for (const ev of String(events).split(/\s+/).filter(Boolean)) {
        if (!this.__ev.has(ev)) this.__ev.set(ev, []);
        this.__ev.get(ev).push({ cb, ctx });
      }
      return this;
    }
    once(events, cb, ctx) {
      const wrapper = (...args) => { this.off(events, wrapper); return cb.apply(ctx || this, args); };
      return this.on(events, wrapper, ctx);
    }
    off(events, cb) {
      const names = events ? String(events).split(/\s+/).filter(Boolean) : [...this.__ev.keys()];
      for (const ev of names) {
        if (!cb) { this.__ev.delete(ev); continue; }
        this.__ev.set(ev, (this.__ev.get(ev) || []).filter((h) => h.cb !== cb));
      }
      return this;
    }
    trigger(ev, ...args) {
      for (const h of [...(this.__ev.get(ev) || [])]) {
        try { h.cb.apply(h.ctx || this, args); } catch (err) { console.error("listener for", ev, "failed:", err); }
      }
      return this;
    }
    emit(ev, ...args) { return this.trigger(ev, ...args); }
    addListener(ev, cb) { return this.on(ev, cb); }
    removeListener(ev, cb) { return this.off(ev, cb); }
    listenerCount(ev) { return (this.__ev.get(ev) || []).length; }
  }

  // ----- ids -----------------------------------------------------------------------------
  const SERVERS = new Set(["c.us", "s.whatsapp.net", "g.us", "lid", "broadcast", "newsletter", "call"]);

  class Wid {
    constructor(serialized) {
      const text = String(serialized);
      const at = text.lastIndexOf("@");
      const user = text.slice(0, at);
      const server = text.slice(at + 1);
      const ok = at > 0 && SERVERS.has(server) &&
        (server === "broadcast" ? /^(status|\d+)$/.test(user) :
         server === "g.us" ? /^\d+(-\d+)?$/.test(user) : /^\d+(:\d+)?$/.test(user));
      if (!ok) throw new Error("wid error: invalid wid");
      this.server = server;
      this.user = user;
      this._serialized = `${user}@${server}`;
    }
    isLid() { return this.server === "lid"; }
    isGroup() { return this.server === "g.us"; }
    isUser() { return this.server === "c.us" || this.server === "lid" || this.server === "s.whatsapp.net"; }
    isStatus() { return this._serialized === "status@broadcast"; }
    isBroadcast() { return this.server === "broadcast"; }
    isNewsletter() { return this.server === "newsletter"; }
    toJid() { return this.server === "c.us" ? `${this.user}@s.whatsapp.net` : this._serialized; }
    toString() { return this._serialized; }
    toJSON() { return this._serialized; }
    equals(other) { return !!other && String(other._serialized || other) === this._serialized; }
  }

  function createWid(value) {
    if (value instanceof Wid) return value;
    if (value && typeof value === "object" && value._serialized) return new Wid(value._serialized);
    if (typeof value !== "string") throw new Error("wid error: invalid wid");
    return new Wid(value.replace("@s.whatsapp.net", "@c.us"));
  }

  const hex = (n) => Array.from(crypto.getRandomValues(new Uint8Array(n)), (b) => b.toString(16).padStart(2, "0")).join("").toUpperCase();

  class MsgKey {
    // new MsgKey({from, to, id, participant, selfDir}) as wwebjs builds it, or {fromMe, remote, id, participant}.
    constructor(opts) {
      const fromMe = "fromMe" in opts ? !!opts.fromMe : opts.selfDir === "out";
      const remote = opts.remote !== undefined ? opts.remote : (fromMe ? opts.to : opts.from);
      this.fromMe = fromMe;
      this.remote = createWid(remote);
      this.id = String(opts.id);
      if (opts.participant) this.participant = createWid(opts.participant);
      this._serialized = `${fromMe}_${this.remote._serialized}_${this.id}` +
        (this.participant ? `_${this.participant._serialized}` : "");
    }
    static async newId() { return "3EB0" + hex(9); }
    static newId_DEPRECATED() { return "3EB0" + hex(9); }
    static fromString(text) {
      const parts = String(text).split("_");
      if (parts.length < 3 || parts.length > 4) throw new Error("invalid MsgKey string");
      return new MsgKey({ fromMe: parts[0] === "true", remote: parts[1], id: parts[2], participant: parts[3] });
    }
    toString() { return this._serialized; }
    equals(other) { return !!other && String(other._serialized || other) === this._serialized; }
  }
  MsgKey.default = MsgKey;

  function idOf(x) {
    if (x === null || x === undefined) return undefined;
    if (typeof x === "string") return x;
    if (x._serialized) return x._serialized;
    if (x.id !== undefined && x.id !== x) return idOf(x.id);
    return String(x);
  }

  // ----- models and collections ------------------------------------------------------------
  function plain(value, depth) {
    if (value instanceof Wid) return { server: value.server, user: value.user, _serialized: value._serialized };
    if (value instanceof MsgKey) {
      const out = { fromMe: value.fromMe, remote: plain(value.remote), id: value.id, _serialized: value._serialized };
      if (value.participant) out.participant = plain(value.participant);
      return out;
    }
    if (value instanceof Collection) return value.getModelsArray().map((m) => m.serialize());
    if (value instanceof Model) return depth > 2 ? idOf(value) : value.serialize(depth + 1);
    if (value instanceof Uint8Array || value instanceof ArrayBuffer || value instanceof Blob) return undefined;
    if (typeof value === "function") return undefined;
    if (Array.isArray(value)) return value.map((v) => plain(v, depth + 1));
    if (value && typeof value === "object") {
      if (depth > 4) return undefined;
      const out = {};
      for (const k of Object.keys(value)) { const v = plain(value[k], depth + 1); if (v !== undefined) out[k] = v; }
      return out;
    }
    return value;
  }

  class Model extends Emitter {
    constructor(attrs) {
      super();
      hidden(this, "__colls", []);
      this.set(attrs || {}, { silent: true });
    }
    get(key) { return this[key]; }
    set(attrs, opts) {
      if (typeof attrs === "string") { attrs = { [attrs]: opts }; opts = arguments[2]; }  // set(key, value, opts)
      const changed = [];
      for (const [k, v] of Object.entries(attrs || {})) {
        if (this[k] === v) continue;
        // an own data property, which also shadows a computed getter of the same name
        Object.defineProperty(this, k, { value: v, enumerable: true, writable: true, configurable: true });
        changed.push(k);
      }
      if (!(opts && opts.silent)) {
        for (const k of changed) this.trigger(`change:${k}`, this, this[k]);
        if (changed.length) this.trigger("change", this);
      }
      return this;
    }
    trigger(ev, ...args) {
      super.trigger(ev, ...args);
      for (const coll of this.__colls) coll.trigger(ev, ...args);
      return this;
    }
    serialize(depth) {
      const out = {};
      for (const k of Object.keys(this)) { const v = plain(this[k], (depth || 0) + 1); if (v !== undefined) out[k] = v; }
      return out;
    }
    toJSON() { return this.serialize(); }
    unsafe() { return this; }
  }

  class Collection extends Emitter {
    constructor(modelClass, name) {
      super();
      hidden(this, "modelClass", modelClass || Model);
      hidden(this, "_byId", new Map());
      hidden(this, "models", []);
      hidden(this, "name", name || "");
    }
    get length() { return this.models.length; }
    _prepare(item) { return item instanceof Model ? item : new this.modelClass(item); }
    // add(models, {merge}) fires `add` (model, collection, options) for each new model.
    // Fake-specific: options.redeliver re-fires `add` for a model that is already present.
    add(items, opts) {
      const list = Array.isArray(items) ? items : [items];
      const out = [];
      for (const item of list) {
        const key = idOf(item && item.id);
        let model = key !== undefined ? this._byId.get(key) : undefined;
        if (model) {
          if (!(item instanceof Model)) { const { id, ...rest } = item; model.set(rest, opts); }
          if (opts && opts.redeliver) this.trigger("add", model, this, opts || {});
        } else {
          model = this._prepare(item);
          this.models.push(model);
          this._byId.set(idOf(model.id), model);
          model.__colls.push(this);
          if (!(opts && opts.silent)) this.trigger("add", model, this, opts || {});
        }
        out.push(model);
      }
      return Array.isArray(items) ? out : out[0];
    }
    gadd(item, opts) { return this.add(item, { merge: true, ...(opts || {}) }); }
    remove(items, opts) {
      const list = Array.isArray(items) ? items : [items];
      for (const item of list) {
        const model = this.get(item);
        if (!model) continue;
        this._byId.delete(idOf(model.id));
        this.models.splice(this.models.indexOf(model), 1);
        model.__colls.splice(model.__colls.indexOf(this), 1);
        if (!(opts && opts.silent)) this.trigger("remove", model, this, opts || {});
      }
    }
    get(id) { return this._byId.get(idOf(id)); }
    has(id) { return this._byId.has(idOf(id)); }
    async find(id) { return this.get(id); }
    getModelsArray() { return this.models.slice(); }
    toArray() { return this.models.slice(); }
    filter(fn) { return this.models.filter(fn); }
    forEach(fn) { return this.models.forEach(fn); }
    map(fn) { return this.models.map(fn); }
    at(i) { return this.models[i]; }
    head() { return this.models[0]; }
    last() { return this.models[this.models.length - 1]; }
    serialize() { return this.models.map((m) => m.serialize()); }
  }

  window.__waCore = { Emitter, Wid, createWid, MsgKey, Model, Collection, idOf, hidden, plain, hex };
})();
