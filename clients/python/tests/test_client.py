"""The client against a real ``corral serve``: the Rust test harness
(tests/tests/it/clients.rs) starts it and passes CORRAL_URL,
CORRAL_ADMIN_TOKEN and CORRAL_ECHO_WASM."""

import os
from pathlib import Path

import httpx
import pytest

from corral_client import Corral, CorralError, JobState, NewJob, StateEvent

URL = os.environ["CORRAL_URL"]
ADMIN = os.environ["CORRAL_ADMIN_TOKEN"]
ECHO = Path(os.environ["CORRAL_ECHO_WASM"])


@pytest.fixture(scope="module")
def corral():
    # A tenant of its own, made with the admin key over plain HTTP.
    tenant = f"py-{os.getpid()}"
    admin = {"authorization": f"Bearer {ADMIN}"}
    assert httpx.post(f"{URL}/v1/tenants", json={"id": tenant}, headers=admin).status_code == 201
    key = httpx.post(f"{URL}/v1/tenants/{tenant}/keys", headers=admin).json()["key"]
    with Corral(URL, key) as client:
        plugin = client.upload_plugin("echo", ECHO.read_bytes(), fuel=100_000_000)
        assert plugin.name == "echo"
        yield client


def test_a_job_is_enqueued_and_waited_for(corral):
    job = corral.enqueue("echo", {"hello": "world"}, priority=5)
    assert (job.plugin, job.priority) == ("echo", 5)
    done = corral.wait(job.id, timeout=120)
    assert done.state == JobState.COMPLETED
    assert done.result == {"hello": "world"}


def test_watch_yields_the_states_until_the_end(corral):
    job = corral.enqueue("echo", [1, 2, 3])
    states = [e.job.state for e in corral.watch(job.id, timeout=120) if isinstance(e, StateEvent)]
    assert states[-1] == JobState.COMPLETED


def test_an_idempotency_key_answers_the_first_job_and_refuses_another_body(corral):
    first = corral.enqueue("echo", {"n": 1}, idempotency_key="py-order-1")
    assert corral.enqueue("echo", {"n": 1}, idempotency_key="py-order-1").id == first.id
    with pytest.raises(CorralError) as refused:
        corral.enqueue("echo", {"n": 2}, idempotency_key="py-order-1")
    assert (refused.value.status, refused.value.code) == (422, "idempotency_key_reused")


def test_a_batch_is_enqueued_and_retried_under_its_key(corral):
    jobs = [NewJob(plugin="echo", input_=n) for n in range(3)]
    ids = corral.enqueue_batch(jobs, idempotency_key="py-batch-1")
    assert len(ids) == 3
    assert corral.enqueue_batch(jobs, idempotency_key="py-batch-1") == ids
    assert corral.wait(ids[2], timeout=120).result == 2


def test_refusals_are_corral_errors_with_the_api_code(corral):
    with pytest.raises(CorralError) as refused:
        corral.enqueue("no-such-plugin", {})
    assert (refused.value.status, refused.value.code) == (422, "unknown_plugin")
    assert "no-such-plugin" in refused.value.message
    with pytest.raises(CorralError) as missing:
        corral.get_job("00000000-0000-0000-0000-000000000000")
    assert (missing.value.status, missing.value.code) == (404, "not_found")
    with pytest.raises(CorralError) as bad:
        corral.upload_plugin("bad", b"not wasm")
    assert bad.value.code == "invalid_component"
    with Corral(URL, "corral_not_a_key") as stranger, pytest.raises(CorralError) as denied:
        stranger.enqueue("echo", {})
    assert denied.value.status == 401
    with pytest.raises(CorralError) as waited:
        corral.wait(corral.enqueue("echo", {}, run_at=_in_an_hour()).id, timeout=0.5)
    assert waited.value.code == "timeout"


def test_the_generated_client_reaches_every_other_route(corral):
    from corral_client._api.api.plugins import list_plugins

    plugins = list_plugins.sync(client=corral.api)
    assert any(p.name == "echo" for p in plugins.plugins)


def _in_an_hour():
    import datetime

    return datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=1)


def test_dead_jobs_are_replayed_and_waiting_ones_cancelled_in_bulk(corral):
    import datetime

    later = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1)
    job = corral.enqueue("echo", 1, run_at=later, queue="py-bulk")
    assert corral.cancel_jobs({"queue": "py-bulk"}, dry_run=True).matched == 1
    assert corral.cancel_jobs({"queue": "py-bulk"}).jobs == [job.id]
    assert corral.get_job(job.id).state == JobState.CANCELLED
    replayed = corral.replay_jobs({"queue": "py-bulk", "state": "cancelled"})
    assert len(replayed.replays) == 1
    assert corral.get_job(replayed.replays[0]).replay_of == job.id
    assert corral.replay_jobs({"queue": "py-bulk", "state": "cancelled"}).jobs == []
