"""`account list` pages with --limit and --after (keyset on id), on both dialects; what `account show` says."""


def test_account_list_pages(cli, migrated_url):
    assert cli("workspace", "create", "acme", db=migrated_url).code == 0
    for i in range(5):
        assert cli("account", "add", "--workspace", "acme", "--name", f"a{i}", db=migrated_url).code == 0
    first = cli("account", "list", "--limit", "2", "--json", db=migrated_url).json()
    second = cli("account", "list", "--limit", "2", "--after", str(first[-1]["id"]), "--json", db=migrated_url).json()
    third = cli("account", "list", "--limit", "2", "--after", str(second[-1]["id"]), "--json", db=migrated_url).json()
    assert [a["name"] for a in first + second + third] == ["a0", "a1", "a2", "a3", "a4"]
    table = cli("account", "list", "--limit", "2", db=migrated_url)
    assert f"next page: --after {first[-1]['id']}" in table.stdout
    assert cli("account", "list", "--limit", "0", db=migrated_url).code == 2


def test_next_page_is_offered_only_when_there_is_one(cli, migrated_url):
    """A page that happens to be full is not followed by a "next page" hint pointing at nothing."""
    assert cli("workspace", "create", "acme", db=migrated_url).code == 0
    for i in range(3):
        assert cli("account", "add", "--workspace", "acme", "--name", f"a{i}", db=migrated_url).code == 0
    exact = cli("account", "list", "--limit", "3", "--json", db=migrated_url)
    assert len(exact.json()) == 3 and "--after" not in exact.stderr
    assert "next page" not in cli("account", "list", "--limit", "3", db=migrated_url).stdout
    short = cli("account", "list", "--limit", "2", "--json", db=migrated_url)
    assert len(short.json()) == 2 and f"--after {short.json()[-1]['id']}" in short.stderr


def test_show_says_why_an_account_is_in_its_state(cli, migrated_url):
    from sqlalchemy import text

    from blazzctl.db import Database

    assert cli("workspace", "create", "acme", db=migrated_url).code == 0
    assert cli("account", "add", "--workspace", "acme", "--name", "sales", db=migrated_url).code == 0
    db = Database(migrated_url)
    with db.engine.begin() as conn:
        conn.execute(text("UPDATE whatsapp_accounts SET status = 'failed', status_reason = 'qr_expired', "
                          "status_changed_at = '2026-11-26 10:00:00', last_error = 'no scan within 5 QR codes'"))
    db.dispose()
    shown = cli("account", "show", "sales", "-w", "acme", "--json", db=migrated_url).json()
    assert (shown["status"], shown["status_reason"], shown["last_error"]) == (
        "failed", "qr_expired", "no scan within 5 QR codes")
    assert shown["status_changed_at"] == "2026-11-26T10:00:00Z"
    human = cli("account", "show", "sales", "-w", "acme", db=migrated_url).stdout
    assert "qr_expired" in human and "no scan within 5 QR codes" in human
