"""pump safety question split: overdose signs (safety_pump, now an emergency) and the
alarm/withdrawal signs (safety_pump_withdrawal, urgent) are two questions

The old `safety_pump` asked about both in one urgent question (issue 12, defect 2). It
now asks only about overdose signs, so check-ins not yet started and clinic protocols
that ask `safety_pump` also get `safety_pump_withdrawal` right after it; nothing the
old question covered is lost for patients already enrolled. Data only, no schema change.

Revision ID: 0010
Revises: 0009
"""
from __future__ import annotations

from typing import Any, Callable

import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None

OLD = "safety_pump"
NEW = "safety_pump_withdrawal"
NOT_STARTED = ("scheduled", "starting", "paused")

checkin = sa.table("checkin", sa.column("id", sa.Integer), sa.column("status", sa.String),
                   sa.column("items", sa.JSON))
protocol = sa.table("protocol", sa.column("id", sa.Integer), sa.column("spec", sa.JSON))


def _with_new(items: list[Any]) -> list[Any]:
    if OLD not in items or NEW in items:
        return items
    at = items.index(OLD) + 1
    return [*items[:at], NEW, *items[at:]]


def _safety_with_new(spec: dict[str, Any]) -> dict[str, Any]:
    rules = list(spec.get("safety") or [])
    items = [r.get("item") for r in rules if isinstance(r, dict)]
    if OLD not in items or NEW in items:
        return spec
    at = next(i for i, r in enumerate(rules) if isinstance(r, dict) and r.get("item") == OLD)
    rules.insert(at + 1, {**rules[at], "item": NEW})
    return {**spec, "safety": rules}


def _without_new(items: list[Any]) -> list[Any]:
    return [i for i in items if i != NEW]


def _safety_without_new(spec: dict[str, Any]) -> dict[str, Any]:
    rules = [r for r in spec.get("safety") or []
             if not (isinstance(r, dict) and r.get("item") == NEW)]
    return {**spec, "safety": rules}


def _rewrite(change_items: Callable[[list[Any]], list[Any]],
             change_spec: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
    bind = op.get_bind()
    rows = bind.execute(sa.select(checkin.c.id, checkin.c["items"])
                        .where(checkin.c.status.in_(NOT_STARTED))).all()
    for row_id, items in rows:
        changed = change_items(list(items or []))
        if changed != list(items or []):
            bind.execute(checkin.update().where(checkin.c.id == row_id).values(items=changed))
    for row_id, spec in bind.execute(sa.select(protocol.c.id, protocol.c.spec)).all():
        if isinstance(spec, dict):
            changed_spec = change_spec(spec)
            if changed_spec != spec:
                bind.execute(protocol.update().where(protocol.c.id == row_id)
                             .values(spec=changed_spec))


def upgrade() -> None:
    _rewrite(_with_new, _safety_with_new)


def downgrade() -> None:
    _rewrite(_without_new, _safety_without_new)
