// blazz login snapshots: an origin's IndexedDB and localStorage, taken in one page and written
// into another context of any browser before the app runs there.
//
// Installed as an init script (before any page script) in every context whose login is kept as a
// snapshot. WhatsApp Web keeps its login under a non-extractable WebCrypto key in IndexedDB, which
// no copy of the records can carry; so keys made in the page (generateKey, importKey, deriveKey,
// unwrapKey) are made extractable here, and a snapshot exports them (JWK). A key made where this
// script does not run (a Worker) stays non-extractable: the snapshot refuses, naming the database
// and store, and the caller keeps the previous archive.
//
// Values are structured clones; they are encoded losslessly as JSON with tagged objects:
// {"$": "obj"|"ab"|"ta"|"dv"|"date"|"re"|"map"|"set"|"blob"|"key"|"undef"|"num"|"bigint", ...}.
(() => {
  if (window.__blazzSnapshot) return;
  const subtle = globalThis.crypto && globalThis.crypto.subtle;
  if (subtle && !SubtleCrypto.prototype.__blazzExtractable) {
    const proto = SubtleCrypto.prototype;
    // [index of the key's algorithm, index of `extractable`] in each method's arguments
    const spots = { generateKey: [0, 1], importKey: [2, 3], deriveKey: [2, 3], unwrapKey: [4, 5] };
    // Keys the platform never lets out (a password or a secret only to derive from): left alone.
    const NEVER = new Set(["PBKDF2", "HKDF"]);
    for (const [name, [algAt, at]] of Object.entries(spots)) {
      const original = proto[name];
      if (typeof original !== "function") continue;
      Object.defineProperty(proto, name, {
        configurable: true, writable: true,
        value: function (...args) {
          const alg = args[algAt];
          const algName = String((alg && alg.name) || alg || "").toUpperCase();
          if (args.length > at && !NEVER.has(algName)) args[at] = true;
          return original.apply(this, args);
        },
      });
    }
    Object.defineProperty(proto, "__blazzExtractable", { value: true });
  }

  // Writes to the login's storage are reported (at most twice a second) to the session, which
  // archives a pooled login within providers.webjs.snapshot_after of them.
  let reported = 0;
  const changed = () => {
    const now = Date.now();
    if (now - reported < 500) return;
    reported = now;
    try { if (window.blazzEmit) window.blazzEmit("storage", {}); } catch (e) { /* page closing */ }
  };
  const watch = (proto, names) => {
    for (const name of names) {
      const original = proto && proto[name];
      if (typeof original !== "function") continue;
      Object.defineProperty(proto, name, {
        configurable: true, writable: true,
        value: function (...args) { changed(); return original.apply(this, args); },
      });
    }
  };
  if (typeof IDBObjectStore !== "undefined") watch(IDBObjectStore.prototype, ["put", "add", "delete", "clear"]);
  if (typeof Storage !== "undefined") watch(Storage.prototype, ["setItem", "removeItem", "clear"]);

  class SnapshotError extends Error {}

  const b64 = (bytes) => {
    let s = "";
    for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
    return btoa(s);
  };
  const unb64 = (text) => Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
  const TYPED = ["Int8Array", "Uint8Array", "Uint8ClampedArray", "Int16Array", "Uint16Array", "Int32Array",
                 "Uint32Array", "Float32Array", "Float64Array", "BigInt64Array", "BigUint64Array"];

  async function encode(v, where, seen) {
    if (v === undefined) return { $: "undef" };
    if (v === null || typeof v === "boolean" || typeof v === "string") return v;
    if (typeof v === "number") return Number.isFinite(v) && !Object.is(v, -0) ? v : { $: "num", v: String(Object.is(v, -0) ? "-0" : v) };
    if (typeof v === "bigint") return { $: "bigint", v: v.toString() };
    if (typeof v !== "object") throw new SnapshotError(`${where}: a ${typeof v} cannot be stored`);
    if (seen.has(v)) throw new SnapshotError(`${where}: a value that refers to itself is not supported`);
    seen.add(v);
    try {
      if (Array.isArray(v)) {
        const out = [];
        for (let i = 0; i < v.length; i++) out.push(await encode(v[i], where, seen));
        return out;
      }
      if (v instanceof ArrayBuffer) return { $: "ab", v: b64(new Uint8Array(v)) };
      if (ArrayBuffer.isView(v)) {
        const bytes = new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
        if (v instanceof DataView) return { $: "dv", v: b64(bytes) };
        const t = v.constructor.name;
        if (!TYPED.includes(t)) throw new SnapshotError(`${where}: unknown typed array ${t}`);
        return { $: "ta", t, v: b64(bytes) };
      }
      if (v instanceof Date) return { $: "date", v: v.getTime() };
      if (v instanceof RegExp) return { $: "re", src: v.source, flags: v.flags };
      if (v instanceof Map) {
        const out = [];
        for (const [k, x] of v) out.push([await encode(k, where, seen), await encode(x, where, seen)]);
        return { $: "map", v: out };
      }
      if (v instanceof Set) {
        const out = [];
        for (const x of v) out.push(await encode(x, where, seen));
        return { $: "set", v: out };
      }
      if (typeof Blob !== "undefined" && v instanceof Blob) {
        const out = { $: "blob", type: v.type, v: b64(new Uint8Array(await v.arrayBuffer())) };
        if (typeof File !== "undefined" && v instanceof File) Object.assign(out, { name: v.name, lastModified: v.lastModified });
        return out;
      }
      if (typeof CryptoKey !== "undefined" && v instanceof CryptoKey) {
        if (!v.extractable) {
          throw new SnapshotError(`${where}: a CryptoKey (${v.algorithm.name}) that cannot be exported ` +
                                  "(made where blazz's init script does not run, e.g. in a Worker)");
        }
        return { $: "key", jwk: await subtle.exportKey("jwk", v), algorithm: await encode(v.algorithm, where, seen),
                 usages: v.usages, type: v.type };
      }
      const proto = Object.getPrototypeOf(v);
      if (proto !== Object.prototype && proto !== null) {
        throw new SnapshotError(`${where}: a ${v.constructor ? v.constructor.name : "value"} cannot be snapshotted`);
      }
      const out = {};
      for (const k of Object.keys(v)) out[k] = await encode(v[k], where, seen);
      return { $: "obj", v: out };
    } finally {
      seen.delete(v);
    }
  }

  async function decode(v) {
    if (v === null || typeof v !== "object") return v;
    if (Array.isArray(v)) {
      const out = [];
      for (const x of v) out.push(await decode(x));
      return out;
    }
    switch (v.$) {
      case "undef": return undefined;
      case "num": return v.v === "-0" ? -0 : Number(v.v);
      case "bigint": return BigInt(v.v);
      case "ab": return unb64(v.v).buffer;
      case "dv": return new DataView(unb64(v.v).buffer);
      case "ta": {
        const bytes = unb64(v.v);
        return new globalThis[v.t](bytes.buffer, 0, bytes.byteLength / globalThis[v.t].BYTES_PER_ELEMENT);
      }
      case "date": return new Date(v.v);
      case "re": return new RegExp(v.src, v.flags);
      case "map": {
        const out = new Map();
        for (const [k, x] of v.v) out.set(await decode(k), await decode(x));
        return out;
      }
      case "set": {
        const out = new Set();
        for (const x of v.v) out.add(await decode(x));
        return out;
      }
      case "blob": {
        const bytes = unb64(v.v);
        return v.name !== undefined ? new File([bytes], v.name, { type: v.type, lastModified: v.lastModified })
                                    : new Blob([bytes], { type: v.type });
      }
      case "key": {
        const alg = await decode(v.algorithm);
        const params = { name: alg.name };
        if (alg.hash) params.hash = alg.hash.name || alg.hash;
        if (alg.namedCurve) params.namedCurve = alg.namedCurve;
        return subtle.importKey("jwk", v.jwk, params, true, v.usages);
      }
      case "obj": {
        const out = {};
        for (const [k, x] of Object.entries(v.v)) out[k] = await decode(x);
        return out;
      }
      default: throw new SnapshotError(`unknown tag ${v.$}`);
    }
  }

  const request = (req) => new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
  const done = (tx) => new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve();
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error || new Error("transaction aborted"));
  });

  async function readDatabase(name) {
    const db = await request(indexedDB.open(name));
    try {
      const stores = [];
      const names = Array.from(db.objectStoreNames);
      if (names.length) {
        const tx = db.transaction(names, "readonly");
        const finished = done(tx);
        const reads = names.map((storeName) => {
          const store = tx.objectStore(storeName);
          const indexes = Array.from(store.indexNames).map((n) => {
            const index = store.index(n);
            return { name: n, keyPath: index.keyPath, unique: index.unique, multiEntry: index.multiEntry };
          });
          return Promise.all([request(store.getAllKeys()), request(store.getAll())]).then(([keys, values]) => ({
            name: storeName, keyPath: store.keyPath, autoIncrement: store.autoIncrement, indexes, keys, values,
          }));
        });
        const raw = await Promise.all(reads);
        await finished;
        for (const s of raw) {
          const where = `IndexedDB ${name}/${s.name}`;
          const records = [];
          for (let i = 0; i < s.keys.length; i++) {
            records.push([await encode(s.keys[i], where, new Set()), await encode(s.values[i], where, new Set())]);
          }
          stores.push({ name: s.name, keyPath: s.keyPath, autoIncrement: s.autoIncrement, indexes: s.indexes, records });
        }
      }
      return { name, version: db.version, stores };
    } finally {
      db.close();
    }
  }

  // The origin's storage: {origin, localStorage: {k: v}, indexedDB: [{name, version, stores}]}.
  async function snapshot() {
    const list = await indexedDB.databases();
    const databases = [];
    for (const { name } of list) databases.push(await readDatabase(name));
    const local = {};
    for (let i = 0; i < localStorage.length; i++) {
      const k = localStorage.key(i);
      local[k] = localStorage.getItem(k);
    }
    return { origin: location.origin, localStorage: local, indexedDB: databases };
  }

  async function writeDatabase(spec) {
    await request(indexedDB.deleteDatabase(spec.name));
    const stores = [];
    for (const s of spec.stores) {  // decoded first: no awaiting while a transaction is open
      const records = [];
      for (const [k, v] of s.records) records.push([await decode(k), await decode(v)]);
      stores.push({ ...s, records });
    }
    const open = indexedDB.open(spec.name, spec.version);
    open.onupgradeneeded = () => {
      const db = open.result;
      for (const s of stores) {
        const store = db.createObjectStore(s.name, { keyPath: s.keyPath, autoIncrement: s.autoIncrement });
        for (const i of s.indexes) store.createIndex(i.name, i.keyPath, { unique: i.unique, multiEntry: i.multiEntry });
      }
    };
    const db = await request(open);
    try {
      if (stores.length) {
        const tx = db.transaction(stores.map((s) => s.name), "readwrite");
        const finished = done(tx);
        for (const s of stores) {
          const store = tx.objectStore(s.name);
          for (const [k, v] of s.records) (s.keyPath === null ? store.put(v, k) : store.put(v));
        }
        await finished;
      }
    } finally {
      db.close();
    }
  }

  // Write a snapshot into this (blank, same-origin) page's storage, replacing what is there.
  async function restore(snap) {
    if (snap.origin !== location.origin) {
      throw new SnapshotError(`the snapshot is of ${snap.origin}, this page is ${location.origin}`);
    }
    for (const { name } of await indexedDB.databases()) await request(indexedDB.deleteDatabase(name));
    for (const spec of snap.indexedDB) await writeDatabase(spec);
    localStorage.clear();
    for (const [k, v] of Object.entries(snap.localStorage)) localStorage.setItem(k, v);
    return { databases: snap.indexedDB.length, keys: Object.keys(snap.localStorage).length };
  }

  const wrap = (fn) => async (...args) => {
    try {
      return await fn(...args);
    } catch (err) {
      throw new Error(`blazz snapshot: ${err && err.message ? err.message : err}`);
    }
  };
  Object.defineProperty(window, "__blazzSnapshot", { value: { snapshot: wrap(snapshot), restore: wrap(restore) } });
})();
