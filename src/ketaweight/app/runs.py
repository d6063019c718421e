"""Runs (a results folder and its report): listing, the answer page's material, comments, comparison."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session as DBSession

from ketaweight.app.answer import (RELATED, Change, ReportSection, compare_reports, read_report, report_sections,
                                   results_files, section_titles)
from ketaweight.app.audit import audit
from ketaweight.app.config import AppConfig
from ketaweight.app.db import Comment, Run, User, bump_state
from ketaweight.app.deps import Auth


def run_folder(config: AppConfig, run: Run) -> Path:
    return config.runs_dir / f"job-{run.job_id}"


def previous_run(db: DBSession, run: Run) -> Run | None:
    return db.scalars(select(Run).where(Run.id < run.id).order_by(Run.id.desc()).limit(1)).first()


def comments_by_section(db: DBSession, run: Run) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for c, username, role in db.execute(select(Comment, User.username, User.role).join(User, User.id == Comment.user_id)
                                        .where(Comment.run_id == run.id).order_by(Comment.at)):
        out[c.section_id].append({"username": username, "role": role, "body": c.body, "at": c.at})
    return out


def answer_material(db: DBSession, config: AppConfig, run: Run) -> dict[str, Any]:
    """Everything the answer page shows: the report's sections, comments, related files, what changed
    (plain values: the routes cache it per state version, see app.cache)."""
    folder = run_folder(config, run)
    report = read_report(folder / "report.json")
    sections, style = report_sections(folder / "report.html")
    files = results_files(folder / "results")
    related: dict[str, list[tuple[str, str]]] = {}
    for s in sections:
        kinds = RELATED.get(s.id, ())
        picked = [(name, kind) for name, kind in files if kind in kinds]
        if s.id == "therapeutic-context":
            picked = [(n, k) for n, k in picked if "depression" in n]
        elif s.id in ("the-link", "limitations", "answer"):
            picked = [(n, k) for n, k in picked if k != "causal" or "depression" not in n]
        related[s.id] = picked
    prev = previous_run(db, run)
    changes: list[Change] = []
    if prev is not None and (run_folder(config, prev) / "report.json").exists():
        changes = compare_reports(read_report(run_folder(config, prev) / "report.json"), report)
    return {"report": report, "sections": sections, "style": style, "related": related,
            "comments": comments_by_section(db, run),
            "previous": {"id": prev.id, "created_at": prev.created_at} if prev is not None else None, "changes": changes,
            "titles": section_titles(report)}


def add_comment(db: DBSession, auth: Auth, run: Run, sections: list[ReportSection], section_id: str, body: str,
                client: str) -> None:
    """Keep a signed-in user's comment on one section of a run's answer page (audited)."""
    body = body.strip()
    if section_id not in {s.id for s in sections}:
        raise ValueError("no such section on this answer page")
    if not body:
        raise ValueError("a comment cannot be empty")
    db.add(Comment(run_id=run.id, section_id=section_id, user_id=auth.user.id, body=body[:5000]))
    bump_state(db)
    audit(db, auth.user, "comment", target=f"run {run.id} section {section_id}", detail=body[:500], client=client)
    db.commit()


def compare_runs(config: AppConfig, a: Run, b: Run) -> dict[str, Any]:
    ra, rb = read_report(run_folder(config, a) / "report.json"), read_report(run_folder(config, b) / "report.json")
    return {"ra": ra, "rb": rb, "changes": compare_reports(ra, rb), "titles": {**section_titles(ra), **section_titles(rb)}}
