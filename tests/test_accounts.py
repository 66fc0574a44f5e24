"""The account and workspace services and the input rules, on SQLite and MariaDB."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from blazzctl import validate
from blazzctl.errors import Conflict, InvalidInput, NotFound
from blazzctl.models import AuditEvent, WhatsAppAccount
from blazzctl.services import accounts, audit, refs, workspaces


@pytest.fixture
def acme(database):
    with database.session() as session:
        ws = workspaces.create(session, name="acme")
        workspaces.create(session, name="2024")  # a name that looks like an id
    return ws


def count(session, model) -> int:
    return session.scalar(select(func.count()).select_from(model))


def test_new_accounts_start_disconnected_and_not_primary(database, acme):
    with database.session() as session:
        acc = accounts.add(session, workspace=refs.workspace(session, "acme"), name="sales", phone="6281234567890")
    with database.session() as session:
        got = refs.account(session, acc.session_id)
        assert (got.status, got.is_primary, got.desired_state) == ("disconnected", False, "stopped")
        assert got.phone_number == "+6281234567890" and got.session_id.startswith("wa_")
        assert got.lease_epoch == 0 and got.owner is None


def test_connected_account_becomes_primary_when_there_is_none(database, acme):
    with database.session() as session:
        ws = refs.workspace(session, "acme")
        a, b = (accounts.add(session, workspace=ws, name=n) for n in ("a", "b"))
    with database.session() as session:
        assert accounts.promote_if_no_primary(session, account_id=a.id, workspace_id=a.workspace_id) is True
    with database.session() as session:
        assert accounts.promote_if_no_primary(session, account_id=b.id, workspace_id=b.workspace_id) is False
    with database.session() as session:
        assert [x["name"] for x in accounts.account_views(session) if x["is_primary"]] == ["a"]


def test_make_primary_is_idempotent_and_moves(database, acme):
    with database.session() as session:
        ws = refs.workspace(session, "acme")
        a, b = (accounts.add(session, workspace=ws, name=n) for n in ("a", "b"))
    for target in ("a", "a", "b", "b", "a"):
        with database.session() as session:
            assert accounts.make_primary(session, account=refs.account(session, target)).is_primary
        with database.session() as session:
            assert [x["name"] for x in accounts.account_views(session) if x["is_primary"]] == [target]
    assert a.id != b.id


def test_remove_clears_primary_and_frees_the_name(database, acme):
    with database.session() as session:
        ws = refs.workspace(session, "acme")
        acc = accounts.add(session, workspace=ws, name="sales")
        accounts.make_primary(session, account=acc)
    with database.session() as session:
        accounts.remove(session, account=refs.account(session, "sales"))
    with database.session() as session:
        with pytest.raises(NotFound):
            refs.account(session, str(acc.id))
        assert accounts.account_views(session) == []
        again = accounts.add(session, workspace=refs.workspace(session, "acme"), name="sales")
        assert again.id != acc.id and not again.is_primary


def test_remove_refuses_a_connected_account_without_force(database, acme):
    with database.session() as session:
        acc = accounts.add(session, workspace=refs.workspace(session, "acme"), name="sales")
        acc.status = "connected"
    with pytest.raises(Conflict, match="connected"):
        with database.session() as session:
            accounts.remove(session, account=refs.account(session, "sales"))
    with database.session() as session:
        accounts.remove(session, account=refs.account(session, "sales"), force=True)
        assert accounts.account_views(session) == []


def test_workspace_scope_is_explicit(database, acme):
    with database.session() as session:
        acc = accounts.add(session, workspace=refs.workspace(session, "acme"), name="sales")
        with pytest.raises(NotFound, match="not found in workspace '2024'"):
            refs.account(session, str(acc.id), workspace_ref="2024")
        assert refs.account(session, "sales", workspace_ref="acme").id == acc.id


def test_workspace_named_like_a_number(database, acme):
    with database.session() as session:
        by_name = refs.workspace(session, "2024")
        assert by_name.name == "2024"
        assert refs.workspace(session, str(by_name.id)).id == by_name.id
        with pytest.raises(NotFound):
            refs.workspace(session, "999999")


def test_invalid_input_writes_nothing_not_even_audit(database, acme):
    with database.session() as session:
        before = count(session, AuditEvent)
    for bad in ({"name": "x\n"}, {"name": "ok", "phone": "nope"}, {"name": "ok", "provider": "meta"}):
        with pytest.raises(InvalidInput):
            with database.session() as session:
                accounts.add(session, workspace=refs.workspace(session, "acme"), **bad)
    with database.session() as session:
        assert count(session, WhatsAppAccount) == 0 and count(session, AuditEvent) == before


def test_audit_rolls_back_with_the_change(database, acme):
    with pytest.raises(RuntimeError):
        with database.session() as session:
            accounts.add(session, workspace=refs.workspace(session, "acme"), name="sales")
            raise RuntimeError("boom")
    with database.session() as session:
        assert [e.command for e in audit.list_events(session)] == ["workspace create", "workspace create"]


def test_duplicate_workspace_and_account_names_conflict(database, acme):
    with pytest.raises(Conflict):
        with database.session() as session:
            workspaces.create(session, name="acme")
    with database.session() as session:
        accounts.add(session, workspace=refs.workspace(session, "acme"), name="Sales")
        accounts.add(session, workspace=refs.workspace(session, "acme"), name="sales")  # names are exact
    with pytest.raises(Conflict):
        with database.session() as session:
            accounts.add(session, workspace=refs.workspace(session, "acme"), name="sales")


# --- input rules -------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["a", "x" * 100, "🛒" * 100, "O'Brien", "a\u200bb", " lead "])
def test_valid_names_are_returned_exactly(name):
    assert validate.name(name) == name


@pytest.mark.parametrize("name", ["", "x" * 101, "a\nb", "\x1b[31mred", "a\x00", "\u0085"])
def test_invalid_names(name):
    with pytest.raises(InvalidInput):
        validate.name(name)


@pytest.mark.parametrize("given,e164", [("+62 812-3456-7890", "+6281234567890"), ("+1 (202) 555-0143", "+12025550143"),
                                        ("0044 20 7946 0958", "+442079460958"), ("6281234567890", "+6281234567890"),
                                        ("+(62) 812.3456.7890", "+6281234567890"),
                                        # possible but not "valid" in the metadata: WhatsApp has such
                                        # numbers, daemons store them when they link, so they are accepted
                                        ("+4915550001", "+4915550001"), ("+49 1555 0000 12", "+491555000012")])
def test_phone_numbers(given, e164):
    assert validate.phone_e164(given) == e164


@pytest.mark.parametrize("given", ["", "abc", "+62", "+62 812", "+0 123 456 789", "++6281234567890",
                                   "+1 800 FLOWERS", "+62 812-3456-7890 x12", "+62 812-3456-7890 ext. 5",
                                   "tel:+6281234567890"])
def test_impossible_phone_numbers(given):
    with pytest.raises(InvalidInput, match="not a valid phone number"):
        validate.phone_e164(given)
