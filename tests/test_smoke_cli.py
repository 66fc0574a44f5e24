def test_workspace_roundtrip(cli, migrated_url):
    r = cli("workspace", "create", "acme", "--json", db=migrated_url)
    assert r.code == 0, r
    assert r.json()["name"] == "acme"
    r = cli("workspace", "create", "acme", db=migrated_url)
    assert r.code == 4 and "already exists" in r.stderr and r.stdout == ""
