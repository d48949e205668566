"""``/docs`` and ``/redoc`` work on a closed network: every asset comes from the API itself."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import httpx
import pytest

if TYPE_CHECKING:
    from tests.live_api import LiveServer

_REFERENCE = re.compile(r"""(?:src|href|url|spec-url)\s*[=:]\s*["']([^"']+)["']""")


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_load_nothing_from_the_network(live_api: LiveServer, page: str) -> None:
    with httpx.Client(base_url=live_api.url, timeout=30) as http:
        response = http.get(page)
        assert response.status_code == 200
        html = response.text
        assert "http://" not in html, html
        assert "https://" not in html, html
        references = _REFERENCE.findall(html)
        assert "/openapi.json" in references
        scripts = [r for r in references if r.endswith(".js")]
        assert scripts, html
        for reference in references:
            assert reference.startswith("/"), reference
            assert not reference.startswith("//"), reference
            asset = http.get(reference)
            assert asset.status_code == 200, reference
            assert len(asset.content) > 100, reference
        if page == "/docs":
            assert '"validatorUrl": null' in html
