"""What the phone and the test harness can do: link, deliver, ack, log out, conflict, seed, hooks."""

from __future__ import annotations

import base64
import binascii
import re
import secrets
import time

from tests.fakes.wa_web import seed
from tests.fakes.wa_web.world import DEFAULT_BEHAVIOURS, ControlError, Device, Release, World, is_odd, normalize_phone

SOCKET_STATES = {"CONFLICT", "CONNECTED", "DEPRECATED_VERSION", "OPENING", "PAIRING", "PROXYBLOCK",
                 "SMB_TOS_BLOCK", "TIMEOUT", "TOS_BLOCK", "UNLAUNCHED", "UNPAIRED", "UNPAIRED_IDLE"}


def media_type_of(mimetype: str) -> str:
    top = str(mimetype).split("/", 1)[0]
    return "sticker" if mimetype == "image/webp" else top if top in ("image", "video", "audio") else "document"


class FakeWorld(World):
    # ----- linking ----------------------------------------------------------------------------------
    def link(self, qr: str | None = None, phone: str | None = None, code: str | None = None) -> dict:
        """Scan ``qr`` (the five-field string) or enter pairing ``code`` on phone ``phone``."""
        with self.cond:
            if code:
                conn, phone = self._conn_for_code(code, phone)
            else:
                if phone is None:
                    raise ControlError(400, "invalid_request", "give 'qr' and 'phone' (or 'code')")
                phone = normalize_phone(phone)
                conn = self._conn_for_qr(qr)
            acc = self._account(phone, create=True)
            dev = Device(token=secrets.token_urlsafe(24), phone=phone, active_conn=conn.id)
            self.devices[dev.token] = dev
            conn.token, conn.state, conn.pair_code = dev.token, "CONNECTED", None
            self._push(conn.events, {"type": "linked", "token": dev.token, "phone": phone,
                                     "pushname": acc.pushname})
            return {"linked": True, "phone": phone, "device": dev.token[:8], "conn": conn.id}

    def _conn_for_qr(self, qr: str | None):
        fields = str(qr or "").strip().split(",")
        if len(fields) != 5 or not all(fields):
            raise ControlError(400, "invalid_qr", "a QR string has five non-empty comma-separated fields: "
                                                  "ref,noisePub,identityPub,advSecret,platform")
        ref = fields[0]
        for conn in self.conns.values():
            issued = [r for r, _ in conn.refs]
            if ref not in issued:
                continue
            if conn.token:
                raise ControlError(409, "already_linked", "this QR's page is already linked")
            if ref not in issued[-2:]:
                raise ControlError(409, "expired_ref", "this QR has rotated away; scan the current one")
            if conn.state == "UNPAIRED_IDLE":
                raise ControlError(409, "qr_idle", "the page stopped showing QR codes (UNPAIRED_IDLE)")
            if not conn.alive(time.time()):
                raise ControlError(409, "page_gone", "the page that showed this QR is no longer connected")
            keys = conn.keys
            if fields[1:4] != [keys.get("noise"), keys.get("identity"), keys.get("adv")]:
                raise ControlError(400, "invalid_qr", "the QR keys do not match the page that showed this ref")
            return conn
        raise ControlError(404, "unknown_ref", "no page is showing this QR ref")

    def _conn_for_code(self, code: str, phone: str | None):
        wanted = str(code).replace("-", "").strip().upper()
        for conn in self.conns.values():
            if conn.pair_code and conn.pair_code == wanted and not conn.token:
                if phone is not None and normalize_phone(phone) != conn.pair_phone:
                    raise ControlError(409, "phone_mismatch", f"this code was requested for +{conn.pair_phone}")
                return conn, conn.pair_phone
        raise ControlError(404, "unknown_code", "no page is waiting for this pairing code")

    # ----- messages -----------------------------------------------------------------------------
    def deliver(self, phone: str, from_: str, body: str = "", *, id: str | None = None, type: str | None = None,
                group: str | None = None, quoted: str | None = None, media: dict | None = None,
                lid: bool | None = None, decrypt_after: float | None = None, hold: bool = False, **extra) -> dict:
        """An incoming message to linked account ``phone`` from ``from_`` (in ``group`` when given).

        ``media={"mimetype", "data" (base64), "filename"?}`` makes a media message whose caption is
        ``body``; the page can download the bytes with ``downloadAndMaybeDecrypt({directPath})``.
        ``lid``: the sender writes from its LID with no phone known to the page (default: the
        ``lid_senders`` rule). The message arrives as ``ciphertext`` and decrypts ``decrypt_after``
        seconds later (default ``decrypt_delay``; 0: arrives decrypted); ``hold`` keeps it
        undecrypted until :meth:`decrypt`.
        """
        phone, sender = normalize_phone(phone), normalize_phone(from_, "from")
        if media is not None:
            extra.update(self._incoming_media(media))
            type = type or media_type_of(media["mimetype"])
            body, extra["caption"] = "", body
        type = type or "chat"
        b = self.behaviours
        as_lid = (b["lid_senders"] and is_odd(sender)) if lid is None else bool(lid)
        sender_lid = f"{seed.lid_for(sender)}@lid"
        with self.cond:
            acc = self._account(phone)
            meta = self._group(acc, group) if group else None
            lid_group = bool(meta and meta["isLidAddressingMode"])
            sender_jid = sender_lid if (as_lid or lid_group) else f"{sender}@c.us"
            author = sender_jid if group else None
            if meta is not None:
                self._add_participant(meta, sender_jid)
            remote = meta["id"] if meta else sender_jid
            if not group:
                self._ensure_chat(acc, remote, extra.get("notifyName") or f"+{sender}")
            mid = id or secrets.token_hex(16).upper()
            delay = b["decrypt_delay"] if decrypt_after is None else float(decrypt_after)
            msg = {"id": {"fromMe": False, "remote": remote, "id": mid, "participant": author},
                   "from": remote, "to": f"{phone}@c.us", "author": author, "body": body, "type": type,
                   "t": int(time.time()), "ack": 0, "notifyName": extra.pop("notifyName", f"Sender {sender[-4:]}"),
                   "quotedStanzaID": quoted, **{k: v for k, v in extra.items() if v is not None}}
            acc.data["messages"].append(msg)
            # what the page may know: the sender's phone, unless it writes as a LID-only sender
            mapping = None if as_lid else {"lid": sender_lid, "pn": f"{sender}@c.us"}
            if mapping:
                self._know_contact(acc, sender, sender_lid)
            elif not any(c["id"] == sender_lid for c in acc.data["contacts"]):
                acc.data["contacts"].append({"id": sender_lid, "name": None, "shortName": None,
                                             "pushname": msg["notifyName"], "isMyContact": False,
                                             "isBusiness": False, "isEnterprise": False})
            event = {"type": "message", "message": msg, "mapping": mapping,
                     "decrypt_after": -1 if hold else max(0.0, delay)}
            if meta is not None:
                event["group"] = meta
            self._push_account(phone, event)
            serialized = f"false_{remote}_{mid}" + (f"_{author}" if author else "")
            return {**msg, "_serialized": serialized}

    def _know_contact(self, acc, user: str, lid: str) -> None:
        jid = f"{user}@c.us"
        for c in acc.data["contacts"]:
            if c["id"] == jid:
                c["lid"] = lid
                return
        acc.data["contacts"].append({"id": jid, "name": None, "shortName": None, "pushname": None,
                                     "isMyContact": False, "isBusiness": False, "isEnterprise": False, "lid": lid})

    def _message(self, acc, id: str) -> dict:
        """The stored message (incoming or sent) whose serialized or bare id is ``id``."""
        for m in reversed(acc.data["messages"]):
            i = m.get("id") or {}
            serialized = f"{str(bool(i.get('fromMe'))).lower()}_{i.get('remote')}_{i.get('id')}" + (
                f"_{i['participant']}" if i.get("participant") else "")
            if id in (i.get("id"), serialized):
                return m
        raise ControlError(404, "unknown_message", f"account +{acc.phone} has no message {id!r}")

    @staticmethod
    def _serialized(m: dict) -> str:
        i = m["id"]
        return (f"{str(bool(i.get('fromMe'))).lower()}_{i['remote']}_{i['id']}"
                + (f"_{i['participant']}" if i.get("participant") else ""))

    def decrypt(self, phone: str, id: str) -> dict:
        """A held ``ciphertext`` message decrypts now (its type changes)."""
        phone = normalize_phone(phone)
        with self.cond:
            m = self._message(self._account(phone), id)
            self._push_account(phone, {"type": "decrypt", "id": self._serialized(m)})
            return {"id": self._serialized(m)}

    def edit(self, phone: str, id: str, body: str) -> dict:
        """The author edits message ``id`` (ours or theirs): its body (caption for media) changes."""
        phone = normalize_phone(phone)
        with self.cond:
            m = self._message(self._account(phone), id)
            previous = m.get("caption") if m.get("directPath") else m.get("body")
            m["caption" if m.get("directPath") else "body"] = body
            self._push_account(phone, {"type": "edit", "id": self._serialized(m), "body": body})
            return {"id": self._serialized(m), "body": body, "previous": previous}

    def revoke(self, phone: str, id: str) -> dict:
        """The author deletes message ``id`` for everyone: its type becomes ``revoked``."""
        phone = normalize_phone(phone)
        with self.cond:
            m = self._message(self._account(phone), id)
            m.update(type="revoked", body="")
            self._push_account(phone, {"type": "revoke", "id": self._serialized(m)})
            return {"id": self._serialized(m)}

    def reveal_phone(self, phone: str, sender: str) -> dict:
        """WhatsApp tells the page the phone number of LID-only ``sender`` (getPhoneNumber knows it)."""
        phone, user = normalize_phone(phone), normalize_phone(sender, "sender")
        lid = f"{seed.lid_for(user)}@lid"
        with self.cond:
            acc = self._account(phone)
            self._know_contact(acc, user, lid)
            self._push_account(phone, {"type": "lid-map", "lid": lid, "pn": f"{user}@c.us"})
            return {"lid": lid, "pn": f"{user}@c.us"}

    def set_canonical(self, typed: str, canonical: str | None) -> dict:
        """Number ``typed`` exists on WhatsApp as ``canonical`` (None: as itself again)."""
        typed = normalize_phone(typed)
        with self.cond:
            if canonical is None:
                self.canonical.pop(typed, None)
            else:
                self.canonical[typed] = normalize_phone(canonical, "canonical")
            return {"typed": typed, "canonical": self.canonical.get(typed, typed)}

    def refuse(self, to: str, value: bool = True) -> dict:
        """The server refuses (ack -1, messageSendResult ERROR) sends to chat id ``to``."""
        with self.cond:
            (self.refused.add if value else self.refused.discard)(str(to))
            return {"to": str(to), "refused": value}

    def drop_module(self, module: str, value: bool = True) -> dict:
        """A WhatsApp Web build without ``module``: pages loaded from now on lack it, live pages lose it."""
        if not re.fullmatch(r"WA\w+", str(module)):
            raise ControlError(400, "invalid_module", "a module name looks like WAWebSendMsgChatAction")
        with self.cond:
            (self.dropped_modules.add if value else self.dropped_modules.discard)(module)
            if value:
                for conn in self.conns.values():
                    self._push(conn.events, {"type": "drop-module", "module": module})
            return {"module": module, "dropped": value}

    def stall_sync(self, phone: str, value: bool = True) -> dict:
        """Pages of ``phone`` that connect from now on never finish loading (hasSynced stays false)."""
        phone = normalize_phone(phone)
        with self.cond:
            (self.stalled.add if value else self.stalled.discard)(phone)
            return {"phone": phone, "stalled": value}

    def behave(self, **changes) -> dict:
        """Turn behaviours of DEFAULT_BEHAVIOURS on or off; live pages follow at once."""
        unknown = set(changes) - set(DEFAULT_BEHAVIOURS)
        if unknown:
            raise ControlError(400, "unknown_behaviour", f"behaviours are {sorted(DEFAULT_BEHAVIOURS)}; "
                                                         f"not {sorted(unknown)}")
        with self.cond:
            for key, value in changes.items():
                self.behaviours[key] = float(value) if key == "decrypt_delay" else bool(value)
            for conn in self.conns.values():
                self._push(conn.events, {"type": "behaviours", "behaviours": dict(self.behaviours)})
            return dict(self.behaviours)

    def _incoming_media(self, media: dict) -> dict:
        if not isinstance(media, dict) or not media.get("mimetype") or media.get("data") is None:
            raise ControlError(400, "invalid_media", "media is {\"mimetype\", \"data\": base64, \"filename\"?}")
        try:
            data = base64.b64decode(media["data"], validate=True)
        except (binascii.Error, ValueError):
            raise ControlError(400, "invalid_media", "media.data must be base64") from None
        entry = self.upload(data, media["mimetype"])
        return {"mimetype": media["mimetype"], "filename": media.get("filename"), "size": entry["size"],
                "filehash": entry["filehash"], "encFilehash": entry["encFilehash"], "directPath": entry["directPath"],
                "clientUrl": entry["mmsUrl"], "mediaKey": entry["mediaKey"],
                "mediaKeyTimestamp": entry["mediaKeyTimestamp"]}

    def _ensure_chat(self, acc, jid: str, name: str) -> None:
        if not any(c["id"] == jid for c in acc.data["chats"]):
            acc.data["chats"].append({"id": jid, "name": name, "t": int(time.time()), "unreadCount": 0})

    def _group(self, acc, group: str) -> dict:
        gid = group if "@" in group else f"{group}@g.us"
        meta = next((g for g in acc.data["groups"] if g["id"] == gid), None)
        if meta is None:
            lid_mode = bool(self.behaviours["lid_senders"] and is_odd(gid.split("@")[0]))
            me = f"{seed.lid_for(acc.phone)}@lid" if lid_mode else f"{acc.phone}@c.us"
            meta = {"id": gid, "subject": f"Group {gid.split('@')[0][-4:]}", "owner": me,
                    "creation": int(time.time()), "desc": "", "announce": False, "restrict": False,
                    "isLidAddressingMode": lid_mode,
                    "participants": [{"id": me, "isAdmin": True, "isSuperAdmin": True}]}
            acc.data["groups"].append(meta)
            self._ensure_chat(acc, gid, meta["subject"])
        return meta

    @staticmethod
    def _add_participant(meta: dict, jid: str) -> None:
        if not any(p["id"] == jid for p in meta["participants"]):
            meta["participants"].append({"id": jid, "isAdmin": False, "isSuperAdmin": False})

    def seen(self, phone: str) -> list[str]:
        """The chat ids account ``phone`` sent read receipts for, oldest first."""
        with self.cond:
            return list(self._account(normalize_phone(phone)).seen)

    def sent(self, phone: str) -> list[dict]:
        with self.cond:
            return [dict(r) for r in self._account(normalize_phone(phone)).sent]

    def ack(self, phone: str, id: str, ack: int) -> dict:
        if ack not in (-1, 0, 1, 2, 3, 4):
            raise ControlError(400, "invalid_ack", "ack is one of -1, 0, 1, 2, 3, 4")
        phone = normalize_phone(phone)
        with self.cond:
            acc = self._account(phone)
            record = next((r for r in acc.sent if id in (r["id"], r["msg_id"])), None)
            if record is None:
                raise ControlError(404, "unknown_message", f"account +{phone} sent no message {id!r}")
            record["ack"] = ack
            self._push_account(phone, {"type": "ack", "id": record["id"], "ack": ack})
            return dict(record)

    # ----- account-wide events ----------------------------------------------------------------
    def logout(self, phone: str) -> dict:
        """The user removed the linked device(s) on the phone."""
        phone = normalize_phone(phone)
        with self.cond:
            self._account(phone)
            devices = self._devices_of(phone)
            for dev in devices:
                self._push(dev.events, {"type": "logout"})
                dev.logged_out = True
            return {"phone": phone, "devices": len(devices)}

    def conflict(self, phone: str) -> dict:
        """WhatsApp Web was opened elsewhere: the account's live pages go to CONFLICT."""
        phone = normalize_phone(phone)
        with self.cond:
            self._account(phone)
            conns = self._active_conns(phone)
            for dev in self._devices_of(phone):
                dev.active_conn = "elsewhere"
            for conn in conns:
                self._push(conn.events, {"type": "conflict"})
            return {"phone": phone, "pages": len(conns)}

    def _active_conns(self, phone: str | None):
        out = []
        for conn in self.conns.values():
            dev = self.devices.get(conn.token or "")
            if phone is None or (dev is not None and dev.phone == phone and dev.active_conn == conn.id):
                out.append(conn)
        return out

    def reload(self, phone: str | None = None) -> dict:
        """Make the account's connected pages (all pages when ``phone`` is None) reload themselves."""
        phone = normalize_phone(phone) if phone else None
        with self.cond:
            conns = [c for c in self._active_conns(phone) if c.alive(time.time())]
            for conn in conns:
                self._push(conn.events, {"type": "reload"})
            return {"pages": len(conns)}

    def socket_state(self, phone: str, state: str) -> dict:
        """Force ``Socket.state`` on the account's connected pages (TIMEOUT, OPENING, ...)."""
        if state not in SOCKET_STATES:
            raise ControlError(400, "invalid_state", f"state is one of {sorted(SOCKET_STATES)}")
        phone = normalize_phone(phone)
        with self.cond:
            conns = self._active_conns(phone)
            for conn in conns:
                self._push(conn.events, {"type": "state", "state": state})
            return {"pages": len(conns)}

    def set_not_on_whatsapp(self, phone: str, value: bool = True) -> dict:
        user = normalize_phone(phone)
        with self.cond:
            (self.not_on_whatsapp.add if value else self.not_on_whatsapp.discard)(user)
            return {"phone": user, "on_whatsapp": not value}

    def seed(self, phone: str, chats: int = 0, groups: int = 0, participants: int = 5,
             messages_per_chat: int = 2, contacts: int = 0, heap_mb: float = 0.0, body_bytes: int = 40) -> dict:
        """Give account ``phone`` (created if new) chats, contacts and groups; connected pages resync."""
        phone = normalize_phone(phone)
        if min(chats, groups, contacts, messages_per_chat) < 0 or participants < 1 or heap_mb < 0:
            raise ControlError(400, "invalid_seed", "counts must be >= 0 and participants >= 1")
        data = seed.seed_account(phone, chats=chats, groups=groups, participants=participants,
                                 messages_per_chat=messages_per_chat, extra_contacts=contacts, body_bytes=body_bytes)
        with self.cond:
            acc = self._account(phone, create=True)
            acc.data = data
            acc.heap_mb = float(heap_mb)
            for conn in self._active_conns(phone):
                self._push(conn.events, {"type": "resync"})
            return {"phone": phone, "chats": len(data["chats"]), "contacts": len(data["contacts"]),
                    "groups": len(data["groups"]), "messages": len(data["messages"])}

    def release(self, version: str, *, drop: list | tuple = (), deprecated: bool = False, live: bool = True) -> dict:
        """Ship (or change) build ``version``: ``drop`` the modules it lacks, ``deprecated`` the server
        refuses its pages, ``live`` the app document points at it from now on (pages already
        loaded keep their build until they reload). Older builds stay servable, as on WhatsApp's CDN."""
        if not re.fullmatch(r"\d+\.\d+\.\d+(-\w+)?", str(version)):
            raise ControlError(400, "invalid_version", "a version looks like 2.3000.1017054665")
        if any(not re.fullmatch(r"WA\w+", str(m)) for m in drop):
            raise ControlError(400, "invalid_module", "a module name looks like WAWebSendMsgChatAction")
        with self.cond:
            self.releases[version] = Release(str(version), frozenset(map(str, drop)), bool(deprecated))
            if live:
                self.live = str(version)
            return self._release_view(version)

    def _release_view(self, version: str) -> dict:
        r = self.releases[version]
        return {"version": r.version, "dropped": sorted(r.dropped), "deprecated": r.deprecated,
                "live": self.live == r.version}

    def set_slow_boot(self, seconds: float) -> dict:
        self.slow_boot = max(0.0, float(seconds))
        return {"seconds": self.slow_boot}

    def set_ref_interval(self, seconds: float) -> dict:
        if float(seconds) <= 0:
            raise ControlError(400, "invalid_interval", "ref interval must be > 0 seconds")
        self.ref_interval = float(seconds)
        return {"ref_interval": self.ref_interval}

    def _qr_of(self, conn) -> str | None:
        if conn.token or not conn.refs or conn.state != "UNPAIRED":
            return None
        k = conn.keys
        return ",".join([conn.refs[-1][0], k.get("noise", ""), k.get("identity", ""), k.get("adv", ""), "1"])

    def waiting_qrs(self) -> list[str]:
        """The QR strings live unpaired pages show right now (what a phone camera would read)."""
        with self.cond:
            now = time.time()
            return [qr for c in self.conns.values() if c.alive(now) and (qr := self._qr_of(c))]

    def snapshot(self) -> dict:
        now = time.time()
        with self.cond:
            return {
                "ref_interval": self.ref_interval, "slow_boot": self.slow_boot, "live": self.live,
                "releases": [self._release_view(v) for v in self.releases],
                "not_on_whatsapp": sorted(self.not_on_whatsapp), "behaviours": dict(self.behaviours),
                "canonical": dict(self.canonical),
                "accounts": {p: {"pushname": a.pushname, "chats": len(a.data["chats"]),
                                 "contacts": len(a.data["contacts"]), "groups": len(a.data["groups"]),
                                 "messages": len(a.data["messages"]), "sent": len(a.sent), "heap_mb": a.heap_mb,
                                 "devices": [{"device": d.token[:8], "active_conn": d.active_conn,
                                              "logged_out": d.logged_out, "pending_events": len(d.events)}
                                             for d in self.devices.values() if d.phone == p]}
                             for p, a in self.accounts.items()},
                "pages": [{"conn": c.id, "state": c.state, "alive": c.alive(now), "closed": c.closed_at is not None, "linked": bool(c.token),
                           "ref": c.refs[-1][0] if c.refs and not c.token else None, "qr": self._qr_of(c),
                           "refs_issued": len(c.refs),
                           "ref_expires_at": (c.refs[-1][1] + self.ref_interval) if c.refs and not c.token else None,
                           "pair_code": c.pair_code}
                          for c in self.conns.values()],
            }
