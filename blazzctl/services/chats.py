"""Reading an account's chats, contacts and groups, keyset-paginated (no OFFSET scans).

A page's cursor is the id of the last row of the previous page (``--before ID``): the next
page starts right after that row in the listing's order, found through the index.
"""

from __future__ import annotations

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from blazzctl.enums import ChatType
from blazzctl.errors import InvalidInput, NotFound
from blazzctl.models import Chat, Contact, Group, GroupParticipant

MAX_LIMIT = 1000


def check_limit(limit: int) -> int:
    """A page size; MAX_LIMIT + 1 is allowed for a full page plus one row that tells whether more follow."""
    if not 1 <= limit <= MAX_LIMIT + 1:
        raise InvalidInput(f"--limit must be from 1 to {MAX_LIMIT}, not {limit}")
    return limit


def chat_query(account_id: int, *, chat_type: str | None = None, unread: bool = False):
    """An account's chats, newest message first (ix_chats_account_last_message, read backwards)."""
    query = (select(Chat).where(Chat.whatsapp_account_id == account_id)
             .order_by(Chat.last_message_at.desc(), Chat.id.desc()))
    if chat_type is not None:
        try:
            query = query.where(Chat.chat_type == ChatType(chat_type))
        except ValueError:
            raise InvalidInput(f"unknown chat type {chat_type!r}", hint="Use private or group.") from None
    if unread:
        query = query.where(Chat.unread_count > 0)
    return query


def after_chat(query, session: Session, account_id: int, before: int):
    """The chats after chat ``before`` in newest-first order (NULL times sort last on both dialects)."""
    cursor = session.execute(select(Chat.last_message_at, Chat.id).where(
        Chat.id == before, Chat.whatsapp_account_id == account_id)).first()
    if cursor is None:
        raise InvalidInput(f"unknown cursor {before}", hint="Use the id of the last chat of the previous page.")
    if cursor.last_message_at is None:
        return query.where(Chat.last_message_at.is_(None), Chat.id < cursor.id)
    return query.where(or_(Chat.last_message_at < cursor.last_message_at,
                           and_(Chat.last_message_at == cursor.last_message_at, Chat.id < cursor.id),
                           Chat.last_message_at.is_(None)))


def list_chats(session: Session, *, account_id: int, chat_type: str | None = None, unread: bool = False,
               limit: int = 50, before: int | None = None) -> list[Chat]:
    query = chat_query(account_id, chat_type=chat_type, unread=unread)
    if before is not None:
        query = after_chat(query, session, account_id, before)
    return list(session.scalars(query.limit(check_limit(limit))))


def list_contacts(session: Session, *, account_id: int, limit: int = 100, after: int | None = None) -> list[Contact]:
    """An account's contacts in id order; ``after`` is the last id of the previous page."""
    query = select(Contact).where(Contact.whatsapp_account_id == account_id).order_by(Contact.id)
    if after is not None:
        query = query.where(Contact.id > after)
    return list(session.scalars(query.limit(check_limit(limit))))


def group_jid(jid: str) -> str:
    jid = jid.strip()
    if not jid:
        raise InvalidInput("no group JID given", hint="Give it as 1203630…@g.us (or its digits).")
    return jid if "@" in jid else f"{jid}@g.us"


def get_group(session: Session, *, account_id: int, jid: str) -> tuple[Group, list[GroupParticipant]]:
    """A group of the account with its participants (admins first)."""
    jid = group_jid(jid)
    group = session.scalars(select(Group).where(Group.whatsapp_account_id == account_id, Group.jid == jid)).first()
    if group is None:
        raise NotFound(f"group {jid!r} not found for this account",
                       hint="Sync the account's groups: blazzctl sync run REF --kind groups --wait.")
    members = list(session.scalars(select(GroupParticipant).where(GroupParticipant.group_id == group.id)
                                   .order_by(GroupParticipant.is_super_admin.desc(), GroupParticipant.is_admin.desc(),
                                             GroupParticipant.jid)))
    return group, members


def request_read(session: Session, *, account, jid: str):
    """Zero the chat's unread count and ask the account's daemon to send WhatsApp a read receipt
    (an ``account_commands`` row of kind ``read_chat``); returns the command to watch."""
    from blazzctl.enums import CommandKind
    from blazzctl.models import AccountCommand
    from blazzctl.services import audit, messages
    from blazzctl.services.audit import os_user

    jid = messages.chat_jid(jid)
    chat = session.scalars(select(Chat).where(Chat.whatsapp_account_id == account.id, Chat.jid == jid)).first()
    if chat is None:
        raise NotFound(f"account {account.name!r} has no chat {jid}",
                       hint=f"See its chats: blazzctl chat list {account.name} --workspace {account.workspace.name}")
    messages.ensure_linked(account)
    chat.unread_count = 0
    command = AccountCommand(whatsapp_account_id=account.id, command=CommandKind.READ_CHAT, args={"chat": jid},
                             requested_by=os_user()[:100])
    session.add(command)
    session.flush()
    audit.record(session, command="chat read", target_type="chat", target=jid, workspace_id=account.workspace_id,
                 details={"account_id": account.id, "command_id": command.id})
    return command
