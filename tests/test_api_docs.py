"""docs/openapi.json is the API's OpenAPI document, and docs/api.md names every route."""

from __future__ import annotations

import json

from blazzctl.api.app import openapi_document
from tests.conftest import REPO


def test_the_checked_in_openapi_document_is_current():
    shipped = json.loads((REPO / "docs" / "openapi.json").read_text(encoding="utf-8"))
    assert shipped == json.loads(json.dumps(openapi_document())), \
        "regenerate it: blazzctl api openapi > docs/openapi.json"


def test_the_guide_names_every_route():
    guide = (REPO / "docs" / "api.md").read_text(encoding="utf-8")
    for path, operations in openapi_document()["paths"].items():
        shown = path.replace("{message_id}", "{id}").replace("{run_id}", "{id}").replace("{endpoint_id}", "{id}")
        last = shown.rsplit("/", 1)[-1]
        assert shown in guide or f"`{last}`" in guide, f"docs/api.md does not name {path}"
        for method in operations:
            assert method.upper() in guide
