"""The API client: one :class:`Client` per server and token.

Every method sends one or two GET requests and turns the answer into typed values, or raises the
:mod:`mobility_client.errors` class of its status. Data come as Parquet, read by Polars, so
types survive (dates stay dates, counts stay integers).
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any, Literal, Self

import httpx
import polars as pl

from mobility_client.errors import error_for
from mobility_client.models import Export, IndicatorInfo, Privacy, Release, ReleaseDetails

if TYPE_CHECKING:
    from collections.abc import Iterable
    from datetime import date
    from types import TracebackType

Level = Literal["admin1", "admin2", "admin3"]


def _iso(day: date | str | None) -> str | None:
    return None if day is None else str(day)


class Client:
    """The mobility-dp API at ``base_url``, called with ``token`` (``mdp_<id>_<secret>``).

    Use it as a context manager (or call :meth:`close`). ``transport`` is for tests.
    """

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout: float = 60.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"),
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout,
            transport=transport,
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    # --- what was released -------------------------------------------------------------------

    def indicators(self) -> list[IndicatorInfo]:
        """Every indicator, its columns and what of it was released."""
        return [IndicatorInfo.from_json(d) for d in self._json("/v1/indicators")]

    def releases(
        self,
        indicator: str | None = None,
        *,
        level: Level | None = None,
        start: date | str | None = None,
        end: date | str | None = None,
    ) -> list[Release]:
        """Published releases, oldest first; only those of ``indicator``, ``level``, or
        overlapping ``start``..``end`` if given."""
        params = {"indicator": indicator, "level": level, "from": _iso(start), "to": _iso(end)}
        return [Release.from_json(d) for d in self._json("/v1/releases", params)]

    def release(self, indicator: str, release_id: str) -> ReleaseDetails:
        """One release's metadata (ε, δ, k, CI, sensitivity, scale...) and ledger status."""
        return ReleaseDetails.from_json(self._json(f"/v1/releases/{indicator}/{release_id}"))

    def release_data(self, indicator: str, release_id: str) -> pl.DataFrame:
        """One release's data file, exactly as published (hash-checked by the server)."""
        path = f"/v1/releases/{indicator}/{release_id}/data"
        return pl.read_parquet(io.BytesIO(self._get(path, {"format": "parquet"}).content))

    # --- exports -----------------------------------------------------------------------------

    def export(
        self,
        indicator: str,
        start: date | str,
        end: date | str | None = None,
        *,
        level: Level = "admin2",
        zones: Iterable[str] = (),
        value: str | None = None,
        baseline: tuple[date | str, date | str] | None = None,
    ) -> Export:
        """Released cells of ``indicator`` from ``start`` to ``end`` (default: ``start``) at
        ``level``, in ``zones`` (codes; coarser codes select the zones inside), with the
        privacy of every release used. ``baseline`` adds the scaled variant (``pct_change``).
        Spends no privacy budget."""
        params: dict[str, Any] = {
            "from": _iso(start), "to": _iso(end), "level": level, "value": value,
            "zones": ",".join(zones) or None,
            "baseline_from": _iso(baseline[0]) if baseline else None,
            "baseline_to": _iso(baseline[1]) if baseline else None,
        }  # fmt: skip
        data = self._get(f"/v1/exports/{indicator}", {**params, "format": "parquet"}).content
        descriptor = self._json(f"/v1/exports/{indicator}/datapackage", params)
        releases = tuple(
            Privacy.from_json(r, indicator)
            for r in descriptor["mobility"]["releases"]
            if r.get("role", "data") == "data"
        )
        return Export(pl.read_parquet(io.BytesIO(data)), releases, descriptor)

    # --- new releases (operators) ------------------------------------------------------------

    def request_release(
        self,
        indicator: str,
        start: date | str,
        end: date | str | None = None,
        *,
        level: Level = "admin2",
        epsilon: float | None = None,
        k: int | None = None,
    ) -> list[ReleaseDetails]:
        """Ask for a new release (operator tokens only): charged to the privacy ledger first,
        refused with :class:`BudgetRefusedError` if the budget would be exceeded; the stored
        release if the same question was already answered (nothing charged)."""
        body = {"indicator": indicator, "from": _iso(start), "to": _iso(end), "level": level,
                "epsilon": epsilon, "k": k}  # fmt: skip
        response = self._send("POST", "/v1/releases", json={
            key: value for key, value in body.items() if value is not None})  # fmt: skip
        return [
            ReleaseDetails(Privacy.from_json(r["metadata"]), "published", r["metadata"])
            for r in response.json()["releases"]
        ]

    # --- HTTP --------------------------------------------------------------------------------

    def _get(self, path: str, params: dict[str, Any] | None = None) -> httpx.Response:
        query = {k: v for k, v in (params or {}).items() if v is not None}
        return self._send("GET", path, params=query)

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        response = self._http.request(method, path, **kwargs)
        if response.is_error:
            try:
                body = response.json()
            except ValueError:
                body = None
            raise error_for(response.status_code, body if isinstance(body, dict) else None,
                            response.text)  # fmt: skip
        return response

    def _json(self, path: str, params: dict[str, Any] | None = None) -> Any:
        return self._get(path, params).json()
