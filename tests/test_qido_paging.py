"""The server's page size: results beyond max_page_size are cut, with the PS3.18 Warning."""

from __future__ import annotations

import httpx
import pytest

from dicomweb_proxy.config import ConfigError, load_settings

from .live_server import live_server
from .qido_expected import read_sources

WARNING = (
    '"The number of results exceeded the maximum supported by the server. '
    'Additional results can be requested."'
)


def test_results_beyond_the_page_size_carry_a_warning(imported_samples, tmp_path):
    config = tmp_path / "proxy.toml"
    config.write_text("max_page_size = 5\n")
    total = len(read_sources(tuple(imported_samples.files)).studies)
    data_dir, url = imported_samples.data_dir, imported_samples.database_url
    with live_server(data_dir, "--config", str(config), database_url=url) as base:
        cut = httpx.get(f"{base}/studies")
        assert len(cut.json()) == 5
        assert cut.headers["warning"] == f"299 {base}: {WARNING}"
        assert "x-total-count" not in cut.headers  # counted only when asked
        counted = httpx.get(f"{base}/studies", headers={"Prefer": "count=exact"})
        assert counted.headers["x-total-count"] == str(total)
        asked_more = httpx.get(f"{base}/studies", params={"limit": 50, "offset": 3})
        assert len(asked_more.json()) == 5 and "warning" in asked_more.headers
        asked_less = httpx.get(f"{base}/studies", params={"limit": 3})
        assert len(asked_less.json()) == 3 and "warning" not in asked_less.headers
        last = httpx.get(f"{base}/studies", params={"offset": total - 2})
        assert len(last.json()) == 2 and "warning" not in last.headers
        count_only = httpx.get(f"{base}/studies", params={"limit": 0})
        assert count_only.json() == [] and count_only.headers["x-total-count"] == str(total)


@pytest.mark.parametrize("value", ["0", "-5", "many"])
def test_max_page_size_must_be_a_positive_number(value):
    with pytest.raises(ConfigError, match="max_page_size"):
        load_settings({}, environ={"DICOMWEB_PROXY_MAX_PAGE_SIZE": value})
