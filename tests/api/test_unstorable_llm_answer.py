"""A paid answer is never lost for a character: an LLM reply holding U+0000 or a lone
surrogate is stored (with U+FFFD in their place), on both backends."""

from __future__ import annotations

from tests.api.api_helpers import create, fake_llm_app
from tests.providers.fake_openai import Behaviour, success


def poisoned(body: object) -> Behaviour:
    return success("Answer with a NUL \x00 and a lone \ud800 surrogate.\n\nTL;DR: kept.")


def test_an_answer_with_nul_and_a_lone_surrogate_is_kept(backend_settings) -> None:
    with fake_llm_app(backend_settings) as (app, fake):
        fake.overrides[("execute", "*")] = poisoned
        client = app.test_client()
        svc = app.extensions["council"]
        sid = create(client)
        assert client.post(f"/api/sessions/{sid}/build_council").status_code == 200
        assert client.post(f"/api/sessions/{sid}/execute").status_code in (200, 202)
        assert svc.workflow.join(sid, 60)
        status = client.get(f"/api/sessions/{sid}/status").json
        assert status["status"] == "execution_complete", status
        results = client.get(f"/api/sessions/{sid}/results").json
        answers = [r for r in results["execution_results"] if r["status"] == "success"]
        asked = sum(1 for kind, _ in fake.calls if kind == "execute")
        assert len(answers) == asked > 0  # every paid answer stored
        assert all("\ufffd" in a["response"] for a in answers)
        assert svc.states.stats.rejected == 0
