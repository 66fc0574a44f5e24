"""`account list` pages with --limit and --after (keyset on id), on both dialects."""


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
