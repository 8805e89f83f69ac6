"""Acknowledged means kept: external progress reports (PROGRESS_API=1) accepted while a
background run reports its own progress are all in the stored state afterwards."""

from __future__ import annotations

from council_app.services import Services
from tests.api.api_helpers import built_app, create
from tests.internals import stored_hot


def test_every_202_survives_a_run_reporting_in_the_same_intervals(backend_settings) -> None:
    with built_app(
        backend_settings, progress_api=True, offline_latency_ms=150, council_max_parallel=1
    ) as app:
        client = app.test_client()
        svc: Services = app.extensions["council"]
        sid = create(client)
        assert client.post(f"/api/sessions/{sid}/build_council").status_code == 200
        assert client.post(f"/api/sessions/{sid}/execute").status_code in (200, 202)
        accepted = 0
        for i in range(40):
            r = client.post(
                f"/api/sessions/{sid}/progress", json={"progress": {"external": {str(i): i}}}
            )
            accepted += r.status_code == 202
        # All of them arrived while the run was reporting (same flush intervals).
        assert client.get(f"/api/sessions/{sid}/status").json["status"] == "executing"
        assert svc.workflow.join(sid, 60)
        assert svc.states.flush(5)
        hot = stored_hot(svc, sid)
        assert hot["status"] == "execution_complete"
        assert hot["progress"]["execution"] == 100  # the run's own progress landed too
        assert len(hot["progress"]["external"]) == accepted == 40
        assert svc.states.stats.rejected == 0
