"""``audit noise``: recompute a release's exact bounded aggregates from the staged data and test
its residuals (released - exact) against the noise it declares.

For an auditor inside the data holder, and its output stays there (:data:`CONFIDENTIAL`: it is
computed from exact data; the count of non-empty keys of a private key set is not shown). It
needs the staged data the release read and the
workspace secret (it keys the random order of contribution bounding, so the same records are
kept as when the release was made). The question is rebuilt from the ledger entry alone
(:func:`~aggregation.audit.rebuild.rebuild_spec`), the exact aggregate recomputed with the same
code, and the noise tested with :mod:`aggregation.audit.residuals`, which explains how
suppression (cells published only when their *noisy* value reaches k) is accounted for.

If the staged data changed after the release (a late drop ingested, a day re-ingested), the
exact aggregates differ from those released and the test may fail for that reason: the entry's
input fingerprint is compared and a difference is reported with the verdict.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from aggregation.audit.files import DATA_FILE, resolve_output
from aggregation.audit.findings import entry_label
from aggregation.audit.noise_models import noise_model
from aggregation.audit.rebuild import rebuild_spec
from aggregation.audit.residuals import DEFAULT_ALPHA, Residuals, run_noise_tests
from aggregation.indicators import exact_aggregate
from aggregation.ledger import files_digest
from aggregation.mechanisms import ci_half_width
from aggregation.release import open_context, plan_release
from aggregation.release.publish import sha256_file
from aggregation.release.suppress import publication_threshold
from schemas.errors import MobilityError
from schemas.indicators import spec as indicator_spec
from schemas.staged import DAY_ZONES_DIR

if TYPE_CHECKING:
    from collections.abc import Mapping

    from aggregation.audit.residuals import NoiseTests, Verdict
    from aggregation.ledger import FileDigest, LedgerEntry
    from aggregation.release import ReleaseContext
    from schemas.release import KeySetKind

CONFIDENTIAL = (
    "For the data holder's auditors only: this output is computed from the exact, non-private "
    "data (residuals, fitted scales, p-values); keep it inside the data holder, never publish it."
)
"""Printed with every ``audit noise`` result."""


@dataclass(frozen=True)
class NoiseAudit:
    """The outcome of :func:`audit_noise` for one release."""

    release_id: str
    indicator: str
    value_column: str
    mechanism: str
    declared_scale: float
    keys: KeySetKind
    threshold: int
    cells_candidate: int
    cells_released: int
    tests: NoiseTests
    problems: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def candidates_shown(self) -> int | None:
        """The number of candidate cells, as it may be shown: None for a private key set, where
        it is the exact number of non-empty keys (itself private)."""
        return None if self.keys == "private" else self.cells_candidate

    @property
    def verdict(self) -> Verdict:
        """``fail`` when a test rejects or the release does not match its data."""
        return "fail" if self.problems else self.tests.verdict

    @property
    def passed(self) -> bool:
        """True unless the verdict is ``fail``."""
        return self.verdict != "fail"

    def summary(self) -> str:
        """One paragraph saying what the verdict means."""
        t = self.tests
        numbers = (
            f"fitted scale {t.scale.fitted:.4g} vs declared {self.declared_scale:.4g} "
            f"(likelihood-ratio p={t.scale.p_value:.3g}); conditional PIT KS "
            f"p={t.shape.p_value:.3g} over {t.shape.cells} released cells; α={t.alpha:g}"
        )
        if self.verdict == "pass":
            return f"The residuals fit {self.mechanism} noise at the declared scale: {numbers}."
        if self.verdict == "inconclusive":
            return (
                f"Inconclusive: too few informative cells to tell the declared noise from half of "
                f"it (p={t.scale.p_value_half:.3g} for half the scale); nothing contradicts the "
                f"declaration: {numbers}."
            )
        return (
            f"The release does not carry the noise it declares: {numbers}. Its noise was skipped "
            "or drawn at another scale than recorded, or the staged data changed after it was "
            "made (see the notes)."
        )

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready account (what ``audit noise --json`` prints)."""
        t = self.tests
        return {
            "release_id": self.release_id,
            "indicator": self.indicator,
            "value_column": self.value_column,
            "mechanism": self.mechanism,
            "declared_scale": self.declared_scale,
            "keys": self.keys,
            "threshold": self.threshold,
            "notice": CONFIDENTIAL,
            "cells_candidate": self.candidates_shown,
            "cells_released": self.cells_released,
            "alpha": t.alpha,
            "verdict": self.verdict,
            "passed": self.passed,
            "scale_test": {
                "fitted_scale": t.scale.fitted,
                "statistic": t.scale.statistic,
                "p_value": t.scale.p_value,
                "p_value_half_scale": t.scale.p_value_half,
            },
            "shape_test": {
                "cells": t.shape.cells,
                "statistic": t.shape.statistic,
                "p_value": t.shape.p_value,
            },
            "problems": list(self.problems),
            "notes": list(self.notes),
            "summary": self.summary(),
        }


def _published_entry(ctx: ReleaseContext, release_id: str) -> LedgerEntry:
    entry = ctx.ledger.entry(release_id)
    if entry.status != "published":
        msg = (
            f"{entry_label(entry)} is {entry.status}, not published: there is no release to "
            "test. Wait for the running release to finish, or run `mobility audit verify`."
        )
        raise MobilityError(msg)
    return entry


def _released_data(root: Path, entry: LedgerEntry) -> pl.DataFrame:
    """The entry's ``data.parquet``, after checking it against its recorded SHA-256."""
    for output in entry.outputs:
        if PurePosixPath(output.path).name != DATA_FILE:
            continue
        path = resolve_output(root, output.path)
        if path is None or not path.is_file() or sha256_file(path) != output.sha256:
            msg = (
                f"{output.path} of {entry_label(entry)} is missing or differs from its recorded "
                "SHA-256, so its noise cannot be tested; run `mobility audit verify` first."
            )
            raise MobilityError(msg)
        return pl.read_parquet(path)
    msg = f"{entry_label(entry)} lists no {DATA_FILE}; run `mobility audit verify`."
    raise MobilityError(msg)


@dataclass(frozen=True)
class _Matched:
    """Exact values of the candidate cells and the released value of each (null: suppressed)."""

    frame: pl.DataFrame
    problems: list[str]


def _match(
    exact: pl.DataFrame, released: pl.DataFrame, keys: list[str], value: str, *, private: bool
) -> _Matched:
    problems: list[str] = []
    casted = released.select(
        [pl.col(c).cast(exact.schema[c]) for c in keys] + [pl.col("value").cast(pl.Int64)]
    )
    duplicated = int(casted.select(keys).is_duplicated().sum())
    if duplicated:
        problems.append(f"{duplicated} released rows repeat a key")
    candidates = exact.select([*keys, pl.col(value).cast(pl.Int64).alias("exact")])
    if private:
        candidates = candidates.filter(pl.col("exact") > 0)
    unknown = casted.join(candidates, on=keys, how="anti").height
    if unknown:
        problems.append(
            f"{unknown} released cells are not candidate cells of the recomputed aggregate"
            + (" (private key sets publish only keys observed in the data)" if private else "")
        )
    frame = candidates.join(casted, on=keys, how="left")
    return _Matched(frame, problems)


def _residuals(
    entry: LedgerEntry, matched: _Matched, threshold: int, *, private: bool
) -> tuple[Residuals, list[str]]:
    """Residuals and floors of the matched cells, and any inconsistency with the release."""
    problems = list(matched.problems)
    frame = matched.frame
    if not private and entry.cells_released is not None and entry.cells_suppressed is not None:
        cells = entry.cells_released + entry.cells_suppressed
        if cells != frame.height:
            problems.append(
                f"the recomputed aggregate has {frame.height} cells, the release had {cells}"
            )
    shown = frame.filter(pl.col("value").is_not_null())
    below = shown.filter(pl.col("value") < threshold).height
    if below:
        problems.append(f"{below} released values are below the threshold {threshold}")
    hidden = frame.filter(pl.col("value").is_null())
    data = Residuals(
        residuals=(shown["value"] - shown["exact"]).to_numpy().astype(np.int64),
        released_floor=(threshold - shown["exact"]).to_numpy().astype(np.int64),
        suppressed_floor=(threshold - hidden["exact"]).to_numpy().astype(np.int64),
    )
    return data, problems


def _notes(entry: LedgerEntry, inputs: tuple[FileDigest, ...]) -> list[str]:
    """A note naming the staged files that differ from those the release read, if any.

    Day-zone summaries are left out on both sides: they are derived from the staged event files
    listed beside them (and made again whenever those change), so the same event files give the
    same exact aggregate. A summary rewritten in a newer format, not written at all (a read-only
    copy, where the audit reads the events), or absent from a release made before summaries
    existed is no difference in the data.
    """
    summaries = f"{DAY_ZONES_DIR}/"
    events = tuple(f for f in inputs if not f.path.startswith(summaries))
    then = {f.path: f.sha256 for f in entry.inputs if not f.path.startswith(summaries)}
    now = {f.path: f.sha256 for f in events}
    # An entry without its list of inputs (older format) has the fingerprint of the events.
    same = then == now if entry.inputs else files_digest(events) == entry.input_fingerprint
    if same:
        return []
    changed = sorted(p for p in then.keys() & now.keys() if then[p] != now[p])
    gone, added = sorted(then.keys() - now.keys()), sorted(now.keys() - then.keys())
    parts = [
        f"{label} {', '.join(paths[:3])}{' …' if len(paths) > 3 else ''}"  # noqa: PLR2004
        for label, paths in (("changed:", changed), ("gone:", gone), ("added:", added))
        if paths
    ]
    note = (
        "the input fingerprint differs from the one recorded at release time (staged files "
        f"by relative path and content; {'; '.join(parts) or 'not listed in the entry'}): the "
        "staged data were re-ingested or changed since, so the exact aggregates may differ "
        "from those released and a failure may come from that rather than from the noise."
    )
    return [note]


def audit_noise(
    root: Path | str,
    release_id: str,
    *,
    alpha: float = DEFAULT_ALPHA,
    environ: Mapping[str, str] | None = None,
) -> NoiseAudit:
    """Test the noise of release ``release_id`` of the workspace at ``root`` (see module doc).

    Needs the workspace secret (``environ``, default the process environment, or the secret file
    named in ``mobility.toml``) and the staged data the release read.
    """
    ctx = open_context(Path(root), environ=environ)
    entry = _published_entry(ctx, release_id)
    released = _released_data(ctx.workspace.root, entry)
    spec = rebuild_spec(entry)
    plan = plan_release(ctx, spec, as_recorded=True)  # the agreement as recorded, if any
    scope = spec.scope()
    released_days = scope.days or scope.home_period  # a home window may reach before the data
    missing = ctx.source_for(spec.source).missing_days(
        released_days.days() if released_days else ()
    )
    if missing:
        msg = (
            f"The staged data of {', '.join(str(d) for d in missing[:5])} that "
            f"{entry_label(entry)} read are not in {ctx.workspace.staged}; audit noise needs "
            "them. Run it where the staged data are kept."
        )
        raise MobilityError(msg)
    exact = exact_aggregate(plan.aggregate, ctx.require_bounding_key())
    private = spec.keys == "private"
    keys = list(indicator_spec(spec.indicator).key_columns)
    matched = _match(exact, released, keys, spec.value_column, private=private)
    threshold = max(
        publication_threshold(
            spec.k,
            spec.reliability,
            ci_half_width(plan.noise.mechanism, entry.scale, spec.confidence),
        ),
        entry.partition_threshold or 0,
    )
    data, problems = _residuals(entry, matched, threshold, private=private)
    tests = run_noise_tests(
        noise_model(entry.mechanism), data, entry.scale, alpha=alpha, seed=entry.entry_id
    )
    return NoiseAudit(
        release_id=entry.entry_id,
        indicator=entry.indicator,
        value_column=spec.value_column,
        mechanism=entry.mechanism,
        declared_scale=entry.scale,
        keys="private" if private else "public",
        threshold=threshold,
        cells_candidate=matched.frame.height,
        cells_released=int(data.residuals.size),
        tests=tests,
        problems=tuple(problems),
        notes=tuple(_notes(entry, plan.request.inputs)),
    )
