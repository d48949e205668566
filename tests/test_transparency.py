"""The public transparency page (issue 20): built from the ledger alone, self-contained, and
without a single released value. Rendered in headless Chromium when it is installed (Debian's
``chromium``; the page's network requests are read from Chromium's net log), else parsed."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from typing import TYPE_CHECKING, Any

import polars as pl
import pytest
from click.testing import CliRunner

from aggregation.release import open_context, release
from aggregation.transparency.page import build_transparency, write_site
from flows.cli import cli
from schemas.indicators import Indicator
from tests.conftest import KEY_ENVIRON, START
from tests.test_agreements import DAY2, _od, register

if TYPE_CHECKING:
    from pathlib import Path


def numbers(text: str) -> set[float]:
    """Every standalone number in ``text`` (not digits inside hashes or ids)."""
    return {float(n) for n in re.findall(r"(?<![\w.])\d+(?:\.\d+)?(?![\w])", text)}


def data_numbers(ws: Path) -> set[float]:
    """Every value and ci95 of every released data file."""
    found: set[float] = set()
    for path in (ws / "releases").rglob("data.parquet"):
        frame = pl.read_parquet(path)
        for column in ("value", "ci95"):
            found |= {float(v) for v in frame[column].to_list()}
    return found


def public_numbers(ws: Path, document: dict[str, Any]) -> set[float]:
    """Numbers the page may show: release metadata (what recipients get), the agreements,
    the configuration, and the positions, timestamps and hashes of the ledger's records."""
    found: set[float] = set()
    for path in (ws / "releases").rglob("metadata.json"):
        found |= numbers(path.read_text())
    for path in [ws / "mobility.toml", *ws.glob("agreement*.toml"), *ws.glob("agreements/*")]:
        found |= numbers(path.read_text())

    def walk(value: object, key: str = "") -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(v, k)
        elif isinstance(value, list):
            for v in value:
                walk(v, key)
        elif key.endswith(("_at", "hash")) or key in ("record_id", "release_id", "seq"):
            found.update(numbers(str(value)))

    walk(document)
    for a in document["agreements"]:  # ε summed over releases (and its share of the budget)
        found |= numbers(json.dumps(a["spend"]))
        found.add(float(round(100 * a["spend"]["epsilon_term"] / a["budget"]["epsilon_term"])))
    return found


class _Resources(HTMLParser):
    """Every element that could load something, and every URL in an attribute or a style."""

    def __init__(self) -> None:
        super().__init__()
        self.loaders: list[str] = []
        self.urls: list[str] = []
        self.text: list[str] = []
        self._style = False

    def handle_endtag(self, tag: str) -> None:
        if tag == "style":
            self._style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._style = tag == "style"
        if tag in ("script", "link", "iframe", "object", "embed", "img", "video", "audio"):
            self.loaders.append(tag)
        for name, value in attrs:
            if name in ("src", "href", "srcset", "data", "action", "poster") and value:
                self.urls.append(value)
            if name == "style" and value and "url(" in value:
                self.urls.append(value)

    def handle_data(self, data: str) -> None:
        if "url(" in data or "@import" in data:
            self.urls.append(data)
        if not self._style:
            self.text.append(data)


def page_requests(page: Path, tmp_path: Path) -> list[str] | None:
    """The URLs a headless Chromium fetched for ``page`` (its own requests, not the browser's
    background ones), or None without Chromium."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        return None
    log = tmp_path / f"{page.stem}-net.json"
    subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         f"--user-data-dir={tmp_path / 'profile'}", f"--log-net-log={log}",
         f"--screenshot={tmp_path / (page.stem + '.png')}", "--window-size=1100,1600",
         page.as_uri()],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    net = json.loads(log.read_text())
    start = net["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    jobs = [e.get("params", {}) for e in net["events"] if e["type"] == start]
    return [
        str(p["url"]) for p in jobs
        if "url" in p and p.get("initiator") != "not an origin" and not p["url"].startswith("file:")
    ]  # fmt: skip


def check_page(ws: Path, page: Path, tmp_path: Path) -> None:
    """The page loads nothing and shows no number of a data file that is not public anyway."""
    html = page.read_text(encoding="utf-8")
    found = _Resources()
    found.feed(html)
    assert found.loaders == []
    assert found.urls == ["transparency.json"]  # the one link: the JSON beside it
    document = json.loads((page.parent / "transparency.json").read_text())
    # What a reader sees (the page's text, not its layout's coordinates) and the JSON's values.
    shown = numbers(" ".join(found.text)) | numbers(json.dumps(document))
    leaked = (shown & data_numbers(ws)) - public_numbers(ws, document)
    where = [
        m.group(0)
        for n in sorted(leaked)[:3]
        for m in re.finditer(rf".{{0,60}}(?<![\w.]){n:g}(?![\w]).{{0,20}}", html)
    ]
    assert not leaked, f"numbers of released data files on the page: {sorted(leaked)}: {where}"
    requests = page_requests(page, tmp_path)
    if requests is not None:
        assert requests == []
        assert (tmp_path / f"{page.stem}.png").stat().st_size > 10_000


@pytest.fixture
def workspace(staged_template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    ws = tmp_path / "ws"
    shutil.copytree(staged_template, ws)
    monkeypatch.setenv("MOBILITY_SECRET", KEY_ENVIRON["MOBILITY_SECRET"])
    ctx = open_context(ws)
    release(ctx, _od(agreement=None, indicator=Indicator.PRESENCE))  # before any agreement
    register(ws, epsilon_per_window=2.5, min_k=0)
    register(ws, id="health", indicators=["presence"])
    ctx = open_context(ws)
    for day in (START, DAY2):
        release(ctx, _od(start=day, end=day, k=0))  # k=0: many small numbers published
        release(ctx, _od(start=day, end=day, indicator=Indicator.PRESENCE, agreement="health"))
    register(ws, version=2, epsilon_per_window=2.5, min_k=0)
    return ws


def test_the_page_states_each_agreement_its_releases_and_budget(
    workspace: Path, tmp_path: Path
) -> None:
    out = tmp_path / "site"
    result = CliRunner().invoke(
        cli, ["transparency", "--out", str(out), "--workspace", str(workspace)]
    )
    assert result.exit_code == 0, result.output
    ledger = open_context(workspace, need_secret=False).ledger
    head = ledger.head()
    assert head is not None
    assert f"ledger head: seq {head.seq} hash {head.record_hash}" in result.output
    document = json.loads((out / "transparency.json").read_text())
    assert document["ledger_head"]["hash"] == head.record_hash
    transport, health = document["agreements"]
    assert (transport["id"], transport["version"]) == ("transport", 2)
    assert [v["version"] for v in transport["versions"]] == [1, 2]
    assert [(r["indicator"], r["period"]["start"], r["level"], r["k"], r["agreement_version"])
            for r in transport["released"]] == [
        ("od_trips", str(START), "admin2", 0, 1), ("od_trips", str(DAY2), "admin2", 0, 1)
    ]  # fmt: skip
    entries = {e.entry_id: e for e in ledger.entries()}
    for r in transport["released"] + health["released"]:
        entry = entries[r["release_id"]]
        assert (r["epsilon"], r["cells_released"]) == (entry.epsilon, entry.cells_released)
        assert "value" not in r
    assert transport["spend"]["epsilon_term"] == pytest.approx(2.0)
    assert [w["epsilon"] for w in transport["spend"]["by_window"]] == [1.0, 1.0]
    assert document["releases_without_agreement"] == 1
    html = (out / "index.html").read_text()
    assert "Commuting flows for the national transport plan." in html
    assert "Ministry of Transport (recipient)" in html
    assert "ε used over the term: 2 of 30 (7 %)" in html
    assert html.count('class="used"') == 2 * (1 + 2)  # each: a term bar and 2 window bars
    assert f"<code id='ledger-head'>{head.record_hash}</code>" in html
    assert "What you can check" in html
    check_page(workspace, out / "index.html", tmp_path)


def test_the_page_reads_no_data_file(workspace: Path, tmp_path: Path) -> None:
    ctx = open_context(workspace, need_secret=False)
    before = build_transparency(ctx)
    for path in (workspace / "releases").rglob("data.*"):
        path.unlink()  # what the page shows cannot come from the released values
    after = build_transparency(ctx)
    assert {**before, "generated_at": ""} == {**after, "generated_at": ""}
    write_site(after, tmp_path / "site")


def test_the_network_check_would_see_a_page_that_loads_something(tmp_path: Path) -> None:
    page = tmp_path / "leaky.html"
    page.write_text('<!DOCTYPE html><html><body><img src="http://127.0.0.1:9/x.png"></body></html>')
    found = _Resources()
    found.feed(page.read_text())
    assert found.loaders == ["img"]
    requests = page_requests(page, tmp_path)
    if requests is None:
        pytest.skip("no chromium: the parse above is the check")
    assert requests == ["http://127.0.0.1:9/x.png"]


@pytest.mark.slow
def test_the_demo_registers_an_agreement_and_writes_a_page_without_data(
    tmp_path: Path, prefect_harness: None
) -> None:
    from flows.demo import run_demo  # noqa: PLC0415 - Prefect is slow to import

    del prefect_harness
    result = run_demo(tmp_path / "demo", subscribers=1_500, days=3, seed=5, say=lambda _: None)
    assert result.transparency is not None
    document = json.loads((result.transparency.parent / "transparency.json").read_text())
    (agreement,) = document["agreements"]
    assert agreement["id"] == "demo-transport"
    entries = open_context(result.workspace, need_secret=False).ledger.entries()
    assert len(agreement["released"]) == len(entries) > 0
    assert all(e.parameters["agreement"] == "demo-transport" for e in entries)
    check_page(result.workspace, result.transparency, tmp_path)
