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
from typing import Any, ClassVar

from pydantic import ConfigDict, ValidationError

from ketaweight.core.errors import InputError, Location
from ketaweight.core.outputs import ZIP_COMMENT, check_file_target
from ketaweight.core.privacy import COUNT_KEYS, MIN_CELL_COUNT
from ketaweight.core.protocol import Count, Real, Result, to_plain
from ketaweight.core.results import make_envelope, parse_results
from ketaweight.core.summary import Summary
from ketaweight.core.version import __version__
from ketaweight.study.spec import Study

FORMAT = "ketaweight-site-bundle"
FORMAT_VERSION = 1
FILES = ("manifest.json", "study.json", "site.json")
BUNDLE_COMMENT = ZIP_COMMENT
MAX_LIST_LENGTH = 1000
"""Longest list a bundle may hold (controls × effects, grids, covariates): longer lists look like rows."""
FORBIDDEN_KEYS = frozenset({"patient_id", "person_id", "patient", "birth_year", "birth_date", "time", "date", "t0", "id"})
BUNDLE_COUNT_KEYS = COUNT_KEYS | {"n_analysed", "n_control", "n_outside_support"}


_STRICT = ConfigDict(extra="forbid")
"""Every bundle type refuses keys it does not know: what leaves a site is exactly what the schema says."""


@dataclass(frozen=True)
class EstimateRow(Result):
    """One estimator's estimate on one outcome scale (outcome units)."""

    __pydantic_config__ = _STRICT
    method: str
    estimate: Real | None
    se: Real | None
    ci_low: Real | None
    ci_high: Real | None
    n: Count


@dataclass(frozen=True)
class ControlRow(Result):
    """One negative (``delta = 0``) or injected positive control, in outcome-equivalents."""

    __pydantic_config__ = _STRICT
    name: str
    group: str
    true_effect: Real
    delta: Real
    estimate: Real | None
    se: Real | None
    n_observed: Count


@dataclass(frozen=True)
class AttritionRow(Result):
    """One attrition step (counts masked below 11)."""

    __pydantic_config__ = _STRICT
    step: str
    reason: str
    n_before: Count
    n_excluded: Count
    n_after: Count


@dataclass(frozen=True)
class Primary(Result):
    """The primary estimate, its likelihood profile and its balance and overlap summaries."""

    __pydantic_config__ = _STRICT
    method: str
    estimate: Real
    se: Real
    ci_low: Real
    ci_high: Real
    ci_level: Real
    likelihood: dict[str, Any]
    max_abs_smd_unweighted: Real | None
    max_abs_smd_weighted: Real | None
    share_outside_support: Real | None
    ess: Real | None
    covariates: tuple[str, ...]
    smd_weighted: tuple[Real | None, ...]
    warnings: tuple[str, ...]


@dataclass(frozen=True)
class Counts(Result):
    """The analysed patients (masked below 11)."""

    __pydantic_config__ = _STRICT
    n_analysed: Count
    n_treated: Count
    n_control: Count
    n_observed_outcome: Count


@dataclass(frozen=True)
class SiteResults(Result):
    """A ``kind = "network_site"`` file (``site.json`` in a bundle; outcome units throughout, controls in
    outcome-equivalents)."""

    kind: ClassVar[str] = "network_site"
    __pydantic_config__ = _STRICT

    format_version: int
    site: str
    study_name: str
    study_hash: str
    outcome: str
    outcome_unit: str
    estimand: str
    outcome_sd_untreated: Real
    provenance: dict[str, Any]
    counts: Counts
    primary: Primary
    estimates: dict[str, tuple[EstimateRow, ...]]
    controls: tuple[ControlRow, ...]
    control_factors: dict[str, Real]
    attrition: tuple[AttritionRow, ...]

    def summary(self) -> Summary:
        p = self.primary
        return Summary(f"Site {self.site}: {self.study_name} ({self.outcome_unit})", ("quantity", "value"),
                       (("primary estimate", f"{p.estimate:.3f} ({p.ci_low:.3f}, {p.ci_high:.3f})"),
                        ("patients analysed", str(self.counts.n_analysed)),
                        ("controls", str(len(self.controls)))))


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
        SiteResults.from_dict(doc)
    except ValidationError as exc:
        problems += [(Location(label, column="$." + ".".join(str(p) for p in err["loc"])), f"not in the bundle schema: {err['msg']}")
                     for err in exc.errors()]
    return problems


def _canonical(doc: Any) -> bytes:
    return (json.dumps(to_plain(doc), indent=1, sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n").encode("utf-8")


def write_bundle(path: str | Path, site: dict[str, Any], study: Study, *, patient_ids: Iterable[str] = (),
                 replace: bool = False) -> Path:
    """Check ``site`` (:func:`check_site_results`) and write the bundle zip at ``path`` atomically.

    Raises :class:`InputError` listing every problem, writing nothing, when the check fails or the
    site document's study hash is not the study's; an earlier bundle is replaced only with ``replace``,
    a file ketaweight did not write never (:func:`ketaweight.core.outputs.check_file_target`).
    """
    target = Path(path)
    check_file_target(target, replace=replace)
    site = to_plain(site)
    problems = check_site_results(site, patient_ids=patient_ids)
    if site.get("study_hash") != study_hash(study):
        problems.append((Location("site.json", column="$.study_hash"), "does not match the study spec being written"))
    if problems:
        raise InputError([(Location(f"{target} (not written)", column=str(loc.column)), reason) for loc, reason in problems])
    envelope = make_envelope(SiteResults.kind, site, site["provenance"])
    payload = {"study.json": _canonical(study.model_dump(mode="json")), "site.json": _canonical(envelope)}
    manifest = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "site": site["site"], "study_name": site["study_name"],
        "study_hash": site["study_hash"], "ketaweight_version": __version__, "created_utc": site["provenance"].get("created_utc"),
        "files": {name: {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)} for name, data in payload.items()},
    }
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh, zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            zf.comment = BUNDLE_COMMENT  # how core.outputs knows a bundle ketaweight wrote (--replace)
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
        envelope = json.loads(data["site.json"])
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
    if not isinstance(envelope, dict) or envelope.get("kind") != SiteResults.kind or not isinstance(envelope.get("results"), dict):
        raise InputError(problems + [(Location(label, column="site.json"), f"not a '{SiteResults.kind}' results file")])
    site = envelope["results"]
    if study_hash(study) != manifest.get("study_hash") or site.get("study_hash") != manifest.get("study_hash"):
        problems.append((Location(label, column="study_hash"), "the study hash in the manifest, the study spec and the results disagree"))
    problems += [(Location(label, column=f"site.json {loc.column}"), reason) for loc, reason in check_site_results(site)]
    if problems:
        raise InputError(problems)
    return SiteBundle(p, manifest, study, parse_results(envelope, f"{p}:site.json", SiteResults).results)
