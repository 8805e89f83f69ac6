"""Counting what the server serves after an adoption, through the real Flask app."""

from __future__ import annotations

from dataclasses import dataclass

from flask.testing import FlaskClient

from tests.migration.old_server_shapes import OldShape


@dataclass
class Served:
    sessions_in: int
    served_with_content: int = 0
    owners_right: int = 0
    deleted_kept: int = 0
    cost_kept: int = 0
    failed_not_served: int = 0

    def line(self, shape_name: str) -> str:
        return (
            f"{shape_name}: sessions in {self.sessions_in}, served with content "
            f"{self.served_with_content}, owners {self.owners_right}, deleted kept "
            f"{self.deleted_kept}, cost kept {self.cost_kept}, failed (reported, not served) "
            f"{self.failed_not_served}"
        )


def count_served(client: FlaskClient, shape: OldShape) -> Served:
    """Ask the API, as each owner, for every session the old server had."""
    got = Served(shape.in_count)
    listed: dict[str, set[str]] = {}
    for sid, e in shape.expect.items():
        headers = {"X-User-Id": e.owner}
        if e.owner not in listed:
            r = client.get("/api/sessions?limit=100", headers=headers)
            assert r.status_code == 200, r.get_data(as_text=True)
            listed[e.owner] = {s["session_id"] for s in r.json["sessions"]}
        r = client.get(f"/api/sessions/{sid}/summary", headers=headers)
        if e.deleted:
            assert r.status_code == 410, (sid, r.status_code, r.get_data(as_text=True))
            assert sid not in listed[e.owner]
            got.deleted_kept += 1
            continue
        assert r.status_code == 200, (sid, r.status_code, r.get_data(as_text=True))
        assert r.json["chairman_verdict"] == e.verdict, sid
        got.served_with_content += 1
        if sid in listed[e.owner]:
            got.owners_right += 1
        cost = (r.json.get("tokens") or {}).get("total_cost_usd")
        if cost == e.cost:
            got.cost_kept += 1
        # Nobody else sees it.
        other = client.get(f"/api/sessions/{sid}/summary", headers={"X-User-Id": "eve@x"})
        assert other.status_code == 404
    for sid in shape.failed:
        for owner in {e.owner for e in shape.expect.values()}:
            r = client.get(f"/api/sessions/{sid}/summary", headers={"X-User-Id": owner})
            assert r.status_code == 404, (sid, r.status_code)
        got.failed_not_served += 1
    return got
