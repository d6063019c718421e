"""The site bundle: what one database shares with the network — aggregates only, checked before it leaves.

A bundle is a zip file holding

* ``manifest.json`` — format and version, site name, study name and **study hash** (SHA-256 of the
  study spec's canonical JSON: every setting, so two sites with different protocols cannot be
  pooled by mistake), ketaweight version, creation time, and the SHA-256 and size of every other
  file;
* ``study.json`` — the study spec as run;
* ``site.json`` — the site's results (:class:`SiteResults`): every estimator's estimate on both
  outcome scales, the primary estimate with its likelihood profile, balance and overlap summaries,
  the attrition (counts under 11 masked), and every negative and positive control's estimate in
  outcome-equivalents.

:func:`check_site_results` is the gate: it refuses a key or value that could be a patient row
(identifier-like keys, a list longer than :data:`MAX_LIST_LENGTH`, any of the site's own patient
identifiers anywhere in the text), any count from 1 to 10 that is not masked, and anything the
strict schema does not know.  :func:`write_bundle` writes nothing when the gate finds a problem,
and writes atomically otherwise; :func:`read_bundle` checks the manifest, every checksum, the study
hash and the gate again before a coordinating centre uses a bundle.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from ketaweight.core.errors import InputError, Location
from ketaweight.core.privacy import COUNT_KEYS, MIN_CELL_COUNT
from ketaweight.core.results import _to_jsonable
from ketaweight.core.version import __version__
from ketaweight.study.spec import Study

FORMAT = "ketaweight-site-bundle"
FORMAT_VERSION = 1
FILES = ("manifest.json", "study.json", "site.json")
MAX_LIST_LENGTH = 1000
"""Longest list a bundle may hold (controls × effects, grids, covariates): longer lists look like rows."""
FORBIDDEN_KEYS = frozenset({"patient_id", "person_id", "patient", "birth_year", "birth_date", "time", "date", "t0", "id"})
BUNDLE_COUNT_KEYS = COUNT_KEYS | {"n_analysed", "n_control", "n_outside_support"}


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Count = int | str  # exact, or "<11"


class EstimateRow(_Model):
    method: str
    estimate: float | None
    se: float | None
    ci_low: float | None
    ci_high: float | None
    n: Count


class ControlRow(_Model):
    name: str
    group: str
    true_effect: float
    delta: float
    estimate: float | None
    se: float | None
    n_observed: Count


class AttritionRow(_Model):
    step: str
    reason: str
    n_before: Count
    n_excluded: Count
    n_after: Count


class Primary(_Model):
    method: str
    estimate: float
    se: float
    ci_low: float
    ci_high: float
    ci_level: float
    likelihood: dict[str, Any]
    max_abs_smd_unweighted: float | None
    max_abs_smd_weighted: float | None
    share_outside_support: float | None
    ess: float | None
    covariates: list[str]
    smd_weighted: list[float | None]
    warnings: list[str]


class Counts(_Model):
    n_analysed: Count
    n_treated: Count
    n_control: Count
    n_observed_outcome: Count


class SiteResults(_Model):
    """``site.json`` (outcome units throughout; controls in outcome-equivalents)."""

    format_version: int
    site: str
    study_name: str
    study_hash: str
    outcome: str
    outcome_unit: str
    estimand: str
    outcome_sd_untreated: float
    provenance: dict[str, Any]
    counts: Counts
    primary: Primary
    estimates: dict[str, list[EstimateRow]]
    controls: list[ControlRow]
    control_factors: dict[str, float]
    attrition: list[AttritionRow]


def study_hash(study: Study) -> str:
    """SHA-256 of the study spec's canonical JSON (sorted keys, no whitespace)."""
    text = json.dumps(study.model_dump(mode="json"), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _walk(value: Any, path: str) -> Iterable[tuple[str, str | None, Any]]:
    """(path, key, value) for every node of a JSON-like value."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield f"{path}.{k}", str(k), v
            yield from _walk(v, f"{path}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield f"{path}[{i}]", None, v
            yield from _walk(v, f"{path}[{i}]")


def check_site_results(doc: dict[str, Any], *, patient_ids: Iterable[str] = (), label: str = "site.json") -> list[tuple[Location, str]]:
    """Every reason ``doc`` may not leave the site (empty when it may): see the module docstring."""
    problems: list[tuple[Location, str]] = []
    ids = set(patient_ids)
    for path, key, value in _walk(doc, "$"):
        where = Location(label, column=path)
        if key is not None and key.lower() in FORBIDDEN_KEYS:
            problems.append((where, f"key {key!r} could hold patient-level data"))
        if isinstance(value, list) and len(value) > MAX_LIST_LENGTH:
            problems.append((where, f"a list of {len(value)} values (more than {MAX_LIST_LENGTH}) looks like patient rows"))
        if key in BUNDLE_COUNT_KEYS and isinstance(value, int) and not isinstance(value, bool) and 0 < value < MIN_CELL_COUNT:
            problems.append((where, f"count {value} is under {MIN_CELL_COUNT} and not masked"))
        if isinstance(value, str) and ids and (value in ids or any(part in ids for part in value.replace(",", " ").split())):
            problems.append((where, "a patient identifier"))
        if key is not None and key in ids:
            problems.append((where, "a patient identifier used as a key"))
    try:
        SiteResults.model_validate(doc)
    except ValidationError as exc:
        problems += [(Location(label, column="$." + ".".join(str(p) for p in err["loc"])), f"not in the bundle schema: {err['msg']}")
                     for err in exc.errors()]
    return problems


def _canonical(doc: Any) -> bytes:
    return (json.dumps(_to_jsonable(doc), indent=1, sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n").encode("utf-8")


def write_bundle(path: str | Path, site: dict[str, Any], study: Study, *, patient_ids: Iterable[str] = ()) -> Path:
    """Check ``site`` (:func:`check_site_results`) and write the bundle zip at ``path`` atomically.

    Raises :class:`InputError` listing every problem, writing nothing, when the check fails or the
    site document's study hash is not the study's.
    """
    target = Path(path)
    site = _to_jsonable(site)
    problems = check_site_results(site, patient_ids=patient_ids)
    if site.get("study_hash") != study_hash(study):
        problems.append((Location("site.json", column="$.study_hash"), "does not match the study spec being written"))
    if problems:
        raise InputError([(Location(f"{target} (not written)", column=str(loc.column)), reason) for loc, reason in problems])
    payload = {"study.json": _canonical(study.model_dump(mode="json")), "site.json": _canonical(site)}
    manifest = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "site": site["site"], "study_name": site["study_name"],
        "study_hash": site["study_hash"], "ketaweight_version": __version__, "created_utc": site["provenance"].get("created_utc"),
        "files": {name: {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)} for name, data in payload.items()},
    }
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh, zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            zf.writestr("manifest.json", _canonical(manifest))
            for name, data in payload.items():
                zf.writestr(name, data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


@dataclass(frozen=True)
class SiteBundle:
    """A bundle as read and checked: its path, manifest, study spec and results."""

    path: Path
    manifest: dict[str, Any]
    study: Study
    results: SiteResults

    @property
    def site(self) -> str:
        return self.results.site


MAX_BUNDLE_BYTES = 50 * 1024 * 1024
"""A bundle larger than this (uncompressed, all files) is refused: aggregates are small."""


def read_bundle(path: str | Path) -> SiteBundle:
    """Open and check one bundle; raises :class:`InputError` naming the file and every problem."""
    p = Path(path)
    label = str(p)
    if not p.is_file():
        raise InputError([(Location(label), "bundle not found")])
    try:
        with zipfile.ZipFile(p) as zf:
            infos = {i.filename: i for i in zf.infolist()}
            extra = sorted(set(infos) - set(FILES))
            missing = sorted(set(FILES) - set(infos))
            if extra or missing:
                raise InputError([(Location(label), f"not a ketaweight site bundle: missing {missing or 'nothing'}, "
                                                    f"unexpected {extra or 'nothing'}")])
            if sum(i.file_size for i in infos.values()) > MAX_BUNDLE_BYTES:
                raise InputError([(Location(label), f"larger than {MAX_BUNDLE_BYTES // 2**20} MiB uncompressed; "
                                                    "a bundle holds aggregates only")])
            data = {name: zf.read(name) for name in FILES}
    except zipfile.BadZipFile as exc:
        raise InputError([(Location(label), f"not a zip file ({exc})")]) from exc
    try:
        manifest = json.loads(data["manifest.json"])
        study_raw = json.loads(data["study.json"])
        site = json.loads(data["site.json"])
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError([(Location(label), f"a bundle file is not valid JSON: {exc}")]) from exc
    problems: list[tuple[Location, str]] = []
    if manifest.get("format") != FORMAT or manifest.get("format_version") != FORMAT_VERSION:
        problems.append((Location(label, column="manifest.json"),
                         f"format {manifest.get('format')!r} version {manifest.get('format_version')!r}; "
                         f"expected {FORMAT!r} version {FORMAT_VERSION}"))
    for name in ("study.json", "site.json"):
        want = (manifest.get("files") or {}).get(name, {}).get("sha256")
        if hashlib.sha256(data[name]).hexdigest() != want:
            problems.append((Location(label, column=name), "checksum does not match the manifest: the file was changed"))
    try:
        study = Study.model_validate(study_raw)
    except ValidationError as exc:
        raise InputError(problems + [(Location(label, column="study.json"), f"not a valid study spec: {exc.errors()[0]['msg']}")]) from exc
    if study_hash(study) != manifest.get("study_hash") or site.get("study_hash") != manifest.get("study_hash"):
        problems.append((Location(label, column="study_hash"), "the study hash in the manifest, the study spec and the results disagree"))
    problems += [(Location(label, column=f"site.json {loc.column}"), reason) for loc, reason in check_site_results(site)]
    if problems:
        raise InputError(problems)
    return SiteBundle(p, manifest, study, SiteResults.model_validate(site))
