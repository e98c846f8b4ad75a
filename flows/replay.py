"""``lms-sync replay`` and ``lms-sync rebuild --from-staging``.

* :func:`replay` re-drives dead letters (``flows/deadletters.py``): for each window with letters it
  runs the institution flow for just those courses and domains, in that window, loading without
  moving any cursor (a replay covers a few courses; a cursor covers them all). A course that had
  no partition in the last committed load is fetched in full (``flows/stage.py``), so nothing
  changed meanwhile is missed. Letters of courses that loaded are removed; a course that fails
  again gets a fresh letter.
* :func:`rebuild_from_staging` rebuilds the serving tables from the immutable staging partitions
  without calling any vendor: every committed window of each source is loaded in the order it was
  fetched (full windows, then each incremental window's changes), exactly as the syncs loaded
  them — a bulk partition (Canvas Data 2, course ``all``) for the courses it covers, with its
  watermarks. The old database is kept beside the new one (``<dsn>.before-rebuild-<time>``).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flows.bulk import BULK_COURSE, committed_bulk
from flows.settings import ConfigError, load_config
from flows.vendors import mapping_for
from transforms.pipeline import LoadReport, load_staged
from transforms.staging import Manifest, StagingStore
from transforms.tokenize import load_hmac_key


def replay(config_file: Path | None, *, overrides: dict[str, Any] | None = None) -> list[dict]:
    """Re-drive every dead letter of the institution; one result per window replayed."""
    from flows.sync import sync_institution

    config = load_config(config_file, **(overrides or {}))
    if config.sources:
        raise ConfigError("replay: run it with a single-source config (one [[sources]] entry)")
    store = StagingStore(config.staging_uri)
    letters = store.dead_letters(institution=config.institution_id, vendor=config.vendor)
    by_window: dict[str, list[dict]] = defaultdict(list)
    for letter in letters:
        by_window[letter["window"]].append(letter)
    results = []
    for window, group in by_window.items():
        courses = sorted({g["course_id"] for g in group})
        domains = sorted({d for g in group for d in g["domains"]})
        state = sync_institution(
            config_file=str(config_file) if config_file else None,
            window=window,
            domains=domains,
            overrides={**(overrides or {}), "course_ids": courses},
            full=any(g.get("full") for g in group),
            keep_cursor=True,
            return_state=True,
        )
        ok = state.is_completed()
        # A course that failed again got a fresh letter (same id, this replay's run id).
        now = {
            d["id"]: d
            for d in store.dead_letters(institution=config.institution_id, vendor=config.vendor)
        }
        for g in group:
            again = now.get(g["id"])
            if again is None or again["run_id"] == g["run_id"]:
                store.remove_dead_letter(
                    institution=config.institution_id, vendor=config.vendor, letter_id=g["id"]
                )
        results.append({"window": window, "courses": courses, "completed": ok})
    return results


def rebuild_from_staging(
    config_file: Path | None, *, into: str | None = None, overrides: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Load every committed staging window into a fresh serving database; no vendor is called."""
    config = load_config(config_file, **(overrides or {}))
    target = into or config.serving_dsn
    kept = None
    if target.startswith("md:"):
        raise ConfigError("rebuild: give --into a DuckDB file path (MotherDuck: rebuild locally)")
    if Path(target).exists():
        if into is not None:
            raise ConfigError(f"rebuild: {target} exists; choose a new --into path")
        kept = f"{target}.before-rebuild-{datetime.now(UTC):%Y%m%dT%H%M%SZ}"
        Path(target).rename(kept)
    key = load_hmac_key(config.hmac_key_ref, config.hmac_key_version)
    windows_loaded = []
    for source in config.per_source():
        store = StagingStore(source.staging_uri)
        manifests = store.committed(institution=source.institution_id, vendor=source.vendor)
        by_window: dict[str, list[Manifest]] = defaultdict(list)
        for m in manifests:
            by_window[m.key.window].append(m)
        for window in sorted(by_window, key=lambda w: min(_started(m) for m in by_window[w])):
            report = _load_window(source, store, by_window[window], target, key)
            windows_loaded.append(
                {"vendor": source.vendor, "window": window, "tables": len(report.tables)}
            )
    return {"serving": target, "previous": kept, "windows": windows_loaded}


def _started(m: Manifest) -> datetime:
    return datetime.fromisoformat(m.until) if m.until else m.created_at


def _load_window(config, store: StagingStore, chosen: list[Manifest], dsn: str, key) -> LoadReport:
    """One window, loaded as the sync that staged it loaded it (``flows/sync.py`` load_serving).

    A domain with a bulk partition (course ``all``, ``flows/bulk.py``) is read from that partition
    alone, for the courses its staging note lists, and its watermarks are stored with the cursor.
    (A run whose REST domains failed for a course held that course's bulk rows back, and kept the
    old watermarks, until the next run; staging does not record that, so a rebuild loads them in
    that window already — the next window's complete partition lands the same state.)
    """
    mapping = mapping_for(config)
    window = chosen[0].key.window
    by_domain: dict[str, list[Manifest]] = defaultdict(list)
    for m in chosen:
        by_domain[m.key.domain].append(m)
    # The run's start (REST partitions carry it); a bulk partition's cursor never passes it.
    signpost = min((_started(m) for m in chosen if m.until), default=None)
    frames, partial, cursors = {}, {}, {}
    loaded: dict[str, list[str]] = {}
    watermarks: dict[str, dict[str, str]] = {}
    for domain, mine in by_domain.items():
        bulk = [m for m in mine if m.key.course_id == BULK_COURSE]
        if bulk:
            mine = bulk
            outcome = committed_bulk(store, bulk[0].key)
            loaded[domain], watermarks[domain] = outcome.courses, outcome.watermarks
            cursors[domain] = signpost or _started(bulk[0])
        else:
            loaded[domain] = [m.key.course_id for m in mine]
            cursors[domain] = min(_started(m) for m in mine)
        for stream in {s for m in mine for s in m.streams}:
            frames[stream] = store.scan(stream, mine)
            partial[stream] = {m.key.course_id for m in mine if m.is_partial(stream)}
    return load_staged(
        frames=frames,
        courses_loaded=loaded,
        mapping=mapping,
        serving_dsn=dsn,
        hmac_key=key,
        run_id=f"rebuild:{window}",
        institution=config.institution_id,
        vendor=config.vendor,
        now=min(cursors.values()),
        partial=partial,
        cursors=cursors,
        windows=dict.fromkeys(by_domain, window),
        watermarks=watermarks,
    )
