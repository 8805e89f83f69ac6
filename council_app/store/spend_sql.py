"""Spend per user and UTC day on either backend: one upsert-increment per priced LLM call."""

from __future__ import annotations

from contextlib import AbstractContextManager
from datetime import date

from sqlalchemy import Connection, select
from sqlalchemy.dialects import postgresql, sqlite

from council_app.store.schema import user_spend, utcnow


class SpendSql:
    """Mixed into the SQL backends (through ``SqlMetadata``), which provide ``_tx``."""

    def _tx(self, write: bool = False) -> AbstractContextManager[Connection]:
        raise NotImplementedError

    def add_spend(self, user_id: str, day: date, cost_usd: float, calls: int = 1) -> None:
        with self._tx(write=True) as conn:
            dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
            stmt = dialect.insert(user_spend).values(
                user_id=user_id, day=day, cost_usd=cost_usd, calls=calls, updated_at=utcnow()
            )
            # The increment happens in the database, so concurrent writers add up.
            stmt = stmt.on_conflict_do_update(
                index_elements=[user_spend.c.user_id, user_spend.c.day],
                set_={
                    "cost_usd": user_spend.c.cost_usd + stmt.excluded.cost_usd,
                    "calls": user_spend.c.calls + stmt.excluded.calls,
                    "updated_at": stmt.excluded.updated_at,
                },
            )
            conn.execute(stmt)

    def spend_on(self, user_id: str, day: date) -> float:
        query = select(user_spend.c.cost_usd).where(
            user_spend.c.user_id == user_id, user_spend.c.day == day
        )
        with self._tx() as conn:
            value = conn.execute(query).scalar()
        return float(value or 0.0)
