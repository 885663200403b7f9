"""POST /api/cloud/jobs/{job_id}/cancel and the status history of GET /api/cloud/jobs/{job_id}, under moto with
the fake Replicate."""

from __future__ import annotations

from tests.fakes.replicate import replicate_job

CREATED = "2026-11-01T10:00:00.000000Z"
STARTED = "2026-11-01T10:01:00.000000Z"


def _synced(api, replicate, status: str, kind: str = "prediction", **fields) -> str:
    job = replicate.add(replicate_job(status, created_at=CREATED, **fields), kind=kind)
    assert api.call("sync_jobs")[0] == 200
    return job["id"]


def test_cancel_asks_the_provider_once_and_answers_the_cancelled_job(api, replicate):
    job_id = _synced(api, replicate, "processing", started_at=STARTED)
    replicate.requests.clear()

    status, body = api.call("cancel_job", path={"job_id": job_id})

    assert status == 200, body
    assert replicate.requests == {("POST", f"/predictions/{job_id}/cancel"): 1}
    job = body["job"]
    assert (job["job_id"], job["status"], job["is_terminal"]) == (job_id, "cancelled", True)
    assert [step["status"] for step in job["history"]] == ["queued", "running", "cancelled"]
    assert job["history"][-1]["at"] == "2026-11-01T11:00:00.000000Z"  # the provider's completed_at
    # Stored through the write path: the job and the metrics say so.
    assert api.call("get_job", path={"job_id": job_id})[1]["job"]["status"] == "cancelled"
    metrics = api.call("metrics")[1]
    assert metrics["jobs_by_status"].get("cancelled") == 1 and metrics["active_count"] == 0


def test_a_training_is_cancelled_as_a_training(api, replicate):
    job_id = _synced(api, replicate, "starting", kind="training")
    replicate.requests.clear()

    status, body = api.call("cancel_job", path={"job_id": job_id})

    assert status == 200 and body["job"]["status"] == "cancelled"
    assert replicate.requests == {("POST", f"/trainings/{job_id}/cancel"): 1}


def test_an_ended_job_answers_409_and_calls_nobody(api, replicate):
    job_id = _synced(api, replicate, "succeeded", completed_at="2026-11-01T10:30:00Z")
    replicate.requests.clear()

    status, body = api.call("cancel_job", path={"job_id": job_id})

    assert status == 409
    assert body["error"] == "job_already_ended" and "completed" in body["message"]
    assert sum(replicate.requests.values()) == 0


def test_cancelling_twice_is_harmless(api, replicate):
    job_id = _synced(api, replicate, "processing")
    first = api.call("cancel_job", path={"job_id": job_id})
    replicate.requests.clear()

    second = api.call("cancel_job", path={"job_id": job_id})

    assert first[0] == 200 and second[0] == 409
    assert sum(replicate.requests.values()) == 0
    job = api.call("get_job", path={"job_id": job_id})[1]["job"]
    assert [step["status"] for step in job["history"]].count("cancelled") == 1


def test_an_unknown_job_answers_404_and_calls_nobody(api, replicate):
    status, body = api.call("cancel_job", path={"job_id": "no-such-job"})

    assert (status, body["error"]) == (404, "job_not_found")
    assert sum(replicate.requests.values()) == 0


def test_a_bad_job_id_is_a_400(api, replicate):
    status, body = api.call("cancel_job", path={"job_id": "../etc"})
    assert (status, body["error"]) == (400, "invalid_input")


def test_a_provider_refusal_is_a_502_sent_once_and_changes_nothing(api, replicate):
    job_id = _synced(api, replicate, "processing")
    path = f"/predictions/{job_id}/cancel"
    for refusal in (500, 422):
        replicate.requests.clear()
        replicate.fail_next("POST", path, refusal)

        status, body = api.call("cancel_job", path={"job_id": job_id})

        assert status == 502, body
        assert body["error"] == "provider_error" and set(body) == {"error", "message"}
        assert replicate.requests == {("POST", path): 1}  # a POST is never retried: it may have landed
    assert api.call("get_job", path={"job_id": job_id})[1]["job"]["status"] == "running"


def test_a_job_the_provider_does_not_know_is_a_409_and_stays_as_it_is(api, replicate):
    job_id = _synced(api, replicate, "processing")
    replicate.predictions.clear()  # Replicate forgot it (seen for long-queued trainings)
    replicate.requests.clear()

    status, body = api.call("cancel_job", path={"job_id": job_id})

    assert (status, body["error"]) == (409, "job_unknown_to_provider"), body
    assert "answered 404" in body["message"]
    assert replicate.requests == {("POST", f"/predictions/{job_id}/cancel"): 1}
    assert api.call("get_job", path={"job_id": job_id})[1]["job"]["status"] == "running"


def test_a_job_that_ended_at_the_provider_meanwhile_keeps_its_end(api, replicate):
    job_id = _synced(api, replicate, "processing")
    replicate.update(job_id, status="succeeded", completed_at="2026-11-01T10:59:00Z")

    status, body = api.call("cancel_job", path={"job_id": job_id})

    # The job ended before the cancel landed: the provider's answer says so and first terminal wins.
    assert status == 200 and body["job"]["status"] == "completed"


def test_get_job_answers_the_history_and_derives_one_for_older_jobs(api, replicate):
    from jobsync import wiring

    job_id = _synced(api, replicate, "processing", started_at=STARTED)
    history = api.call("get_job", path={"job_id": job_id})[1]["job"]["history"]
    assert history == [{"status": "queued", "at": CREATED}, {"status": "running", "at": STARTED}]

    # A job item written before histories were kept has no history attribute.
    table = wiring.job_store()._table
    table.update_item(Key={"job_id": job_id}, UpdateExpression="REMOVE history")
    assert "history" not in table.get_item(Key={"job_id": job_id})["Item"]
    assert api.call("get_job", path={"job_id": job_id})[1]["job"]["history"] == history
    # Lists stay lean: the history is the job page's.
    assert "history" not in api.call("list_jobs")[1]["jobs"][0]


def test_a_refresh_adds_each_transition_at_the_providers_time(api, replicate):
    job_id = _synced(api, replicate, "starting")
    replicate.update(job_id, status="processing", started_at=STARTED)
    api.call("list_jobs", query={"sync_active": "true"})
    replicate.update(job_id, status="succeeded", completed_at="2026-11-01T10:09:00.123456789Z", predict_time=480.0)
    api.call("list_jobs", query={"sync_active": "true"})
    api.call("list_jobs", query={"sync_active": "true"})  # nothing new: nothing added

    history = api.call("get_job", path={"job_id": job_id})[1]["job"]["history"]

    assert history == [
        {"status": "queued", "at": CREATED},
        {"status": "running", "at": STARTED},
        {"status": "completed", "at": "2026-11-01T10:09:00.123456Z"},
    ]
