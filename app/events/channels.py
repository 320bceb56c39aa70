"""Tenant-scoped channel names and the wire shape of a published event."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any


def customer_channel(organization_id: uuid.UUID, customer_id: uuid.UUID) -> str:
    """Everything that happens to one customer."""
    return f"org:{organization_id}:customer:{customer_id}"


def activity_channel(organization_id: uuid.UUID) -> str:
    """The organization-wide feed."""
    return f"org:{organization_id}:activity"


@dataclass(frozen=True, slots=True)
class Published:
    """A domain event as subscribers receive it."""

    id: int
    organization_id: uuid.UUID
    customer_id: uuid.UUID | None
    sequence: int
    type: str
    payload: dict[str, Any]
    actor: str | None
    created_at: datetime
    tx: int = 0
    """The id of the transaction that wrote the event (with `id`, its place in the
    organization's feed: see `feed.Cursor`)."""

    def channels(self) -> list[str]:
        """Where this event is published."""
        names = [activity_channel(self.organization_id)]
        if self.customer_id is not None:
            names.insert(0, customer_channel(self.organization_id, self.customer_id))
        return names

    def encode(self) -> str:
        return json.dumps(
            {
                "id": self.id,
                "org": str(self.organization_id),
                "customer": str(self.customer_id) if self.customer_id else None,
                "seq": self.sequence,
                "type": self.type,
                "payload": self.payload,
                "actor": self.actor,
                "at": self.created_at.isoformat(),
                "tx": self.tx,
            },
            separators=(",", ":"),
        )

    @classmethod
    @lru_cache(maxsize=4096)
    def decode(cls, text: str) -> Published:
        """The event of a wire message; the same object for every subscriber of it."""
        data = json.loads(text)
        return cls(
            id=int(data["id"]),
            organization_id=uuid.UUID(data["org"]),
            customer_id=uuid.UUID(data["customer"]) if data.get("customer") else None,
            sequence=int(data["seq"]),
            type=data["type"],
            payload=data["payload"],
            actor=data.get("actor"),
            created_at=datetime.fromisoformat(data["at"]),
            tx=int(data.get("tx") or 0),
        )

    @classmethod
    def of_row(cls, row: dict[str, Any]) -> Published:
        payload = row["payload"]
        return cls(
            id=int(row["id"]),
            organization_id=row["organization_id"],
            customer_id=row["customer_id"],
            sequence=int(row["sequence"]),
            type=row["type"],
            payload=json.loads(payload) if isinstance(payload, str) else payload,
            actor=row["actor"],
            created_at=row["created_at"],
            tx=int(row.get("tx") or 0),
        )
