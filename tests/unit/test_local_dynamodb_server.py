"""The local stack's DynamoDB server: exact under concurrency, every answered write survives kill -9, flat streams.

Servers are real (werkzeug on a free loopback port) and driven through boto3. Restarts run the server as a
subprocess, as the stack runs it, so that SIGKILL is a real crash.
"""

from __future__ import annotations

import functools
import json
import os
import selectors
import signal
import subprocess
import sys
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from moto.core.base_backend import BackendDict

from local.dynamodb_server import LocalDynamoDB
from local.journal import Journal, JournalCorrupt
from local.streams import StreamReader
from local.template import create_tables, load_template

ROOT = Path(__file__).resolve().parents[2]
REGION = "us-east-1"
JOBS = "jobsync-local-JobsTable"
STATE = "jobsync-local-StateTable"
COUNTER = {"pk": {"S": "metrics#jobs"}}
NO_RETRIES = Config(retries={"max_attempts": 1, "mode": "standard"})


def client(url: str, service: str = "dynamodb", config: Config | None = None):
    return boto3.client(
        service,
        endpoint_url=url,
        region_name=REGION,
        aws_access_key_id="local",
        aws_secret_access_key="local",
        config=config or Config(account_id_endpoint_mode="disabled"),
    )


@functools.cache
def template() -> dict:
    return load_template()  # read once: each in-process server's tables are created from it


def make_tables(url: str) -> dict[str, str]:
    return create_tables(client(url), template(), lambda logical_id: f"jobsync-local-{logical_id}")


@pytest.fixture
def server(tmp_path):
    """A server in this process, restored over an empty state folder, its moto data wiped afterwards."""
    server = LocalDynamoDB(tmp_path / "state")
    url = server.start()
    make_tables(url)
    server.restore()
    yield server
    server.stop()
    BackendDict.reset()  # moto's data belongs to the process: leave none to the next test


def job(job_id: str) -> dict:
    return {"job_id": {"S": job_id}, "status": {"S": "queued"}, "provider": {"S": "replicate"}}


def create_jobs(dynamodb, job_ids: list[str], extra: list[dict] | None = None) -> None:
    """New jobs and the counter moved by as many, in one transaction (as the job store writes them)."""
    puts = [
        {"Put": {"TableName": JOBS, "Item": job(job_id), "ConditionExpression": "attribute_not_exists(job_id)"}}
        for job_id in job_ids
    ]
    counter = {
        "Update": {
            "TableName": STATE,
            "Key": COUNTER,
            "UpdateExpression": "ADD jobs_total :n",
            "ExpressionAttributeValues": {":n": {"N": str(len(job_ids))}},
        }
    }
    dynamodb.transact_write_items(TransactItems=[*puts, counter, *(extra or [])])


def counter(dynamodb) -> int:
    item = dynamodb.get_item(TableName=STATE, Key=COUNTER, ConsistentRead=True).get("Item")
    return int(item["jobs_total"]["N"]) if item else 0


def job_ids(dynamodb) -> set[str]:
    pages = dynamodb.get_paginator("scan").paginate(TableName=JOBS, ConsistentRead=True)
    return {item["job_id"]["S"] for page in pages for item in page["Items"]}


def stream_shard():
    from moto.dynamodb.models import dynamodb_backends

    return dynamodb_backends["123456789012"][REGION].tables[JOBS].stream_shard


# ------------------------------------------------------------------ concurrency


def outcome(call, *args, **kwargs) -> str:
    """'200', or the status and error code of a refused request."""
    try:
        call(*args, **kwargs)
    except ClientError as error:
        return f"{error.response['ResponseMetadata']['HTTPStatusCode']} {error.response['Error']['Code']}"
    return "200"


def test_concurrent_transactions_leave_exact_counters_and_no_server_error(server):
    """20 threads commit and fail transactions at once. Without the server's lock, moto's transactions
    interleave: a failed one's rollback undoes others' commits (lost jobs, a wrong counter), commits are
    cancelled for conditions another thread's half-done work failed, and scans meet dictionaries changing
    size (500)."""
    dynamodb = client(server.url, config=NO_RETRIES)
    create_jobs(dynamodb, ["taken"])
    taken = {"Put": {"TableName": JOBS, "Item": job("taken"), "ConditionExpression": "attribute_not_exists(job_id)"}}

    def worker(thread: int) -> list[str]:
        own = client(server.url, config=NO_RETRIES)
        outcomes = []
        for round_ in range(6):
            outcomes.append(outcome(create_jobs, own, [f"t{thread}-r{round_}-{n}" for n in range(3)]))
            outcomes.append(outcome(create_jobs, own, [f"t{thread}-r{round_}-lost"], extra=[taken]))
            outcomes.append(outcome(own.scan, TableName=JOBS, Limit=50))
        return outcomes

    with ThreadPoolExecutor(max_workers=20) as pool:
        outcomes = Counter(answer for answers in pool.map(worker, range(20)) for answer in answers)

    assert outcomes == {"200": 20 * 6 * 2, "400 TransactionCanceledException": 20 * 6}
    expected = {"taken"} | {f"t{thread}-r{round_}-{n}" for thread in range(20) for round_ in range(6) for n in range(3)}
    assert job_ids(dynamodb) == expected
    assert counter(dynamodb) == len(expected)


def test_only_answered_writes_move_the_count_readers_of_the_stream_wait_on(server):
    dynamodb = client(server.url, config=NO_RETRIES)
    before = server.writes
    dynamodb.get_item(TableName=JOBS, Key={"job_id": {"S": "a"}})
    dynamodb.scan(TableName=JOBS)
    dynamodb.describe_table(TableName=JOBS)
    with pytest.raises(ClientError):  # refused: changed nothing
        dynamodb.put_item(TableName=JOBS, Item=job("a"), ConditionExpression="attribute_exists(job_id)")
    assert server.writes == before and server.wait_for_write(before, timeout=0) == before
    dynamodb.put_item(TableName=JOBS, Item=job("a"))
    assert server.writes == before + 1 and server.wait_for_write(before, timeout=0) == before + 1


# ----------------------------------------------------------------------- stream


def test_every_committed_record_is_read_exactly_once_and_none_is_kept_after(server):
    dynamodb = client(server.url)
    reader = StreamReader.for_table(dynamodb, client(server.url, "dynamodbstreams"), JOBS)
    taken = {"Put": {"TableName": JOBS, "Item": job("taken"), "ConditionExpression": "attribute_not_exists(job_id)"}}
    create_jobs(dynamodb, ["taken"])
    read: list[dict] = []
    done = threading.Event()

    def write(thread: int) -> None:
        own = client(server.url)
        for round_ in range(5):
            create_jobs(own, [f"t{thread}-r{round_}"])
            with pytest.raises(ClientError):
                create_jobs(own, [f"t{thread}-r{round_}-cancelled"], extra=[taken])

    def drain() -> None:
        while not done.is_set():
            read.extend(reader.read())

    draining = threading.Thread(target=drain)
    draining.start()
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(write, range(8)))
    done.set()
    draining.join()
    read.extend(reader.read())

    inserted = Counter(record["dynamodb"]["Keys"]["job_id"]["S"] for record in read)
    assert inserted == Counter({"taken": 1} | {f"t{thread}-r{round_}": 1 for thread in range(8) for round_ in range(5)})
    sequence_numbers = [int(record["dynamodb"]["SequenceNumber"]) for record in read]
    assert sequence_numbers == sorted(set(sequence_numbers))
    assert stream_shard().items == []  # moto's record list, trimmed once read

    dynamodb.put_item(TableName=JOBS, Item=job("after"))
    assert [record["dynamodb"]["Keys"]["job_id"]["S"] for record in reader.read()] == ["after"]
    assert stream_shard().items == []
    from moto.dynamodbstreams.models import dynamodbstreams_backends

    assert len(dynamodbstreams_backends["123456789012"][REGION].shard_iterators) <= 2


# ------------------------------------------------------------- answers, fast


def every_kind_of_value(job_id: str) -> dict:
    """A job item holding every DynamoDB type but binary, nested as the stack's items never are."""
    return {
        **job(job_id),
        "cost": {"N": "1.25"},
        "logs": {"S": "step 10/100 é ✓\nloss=0.5"},
        "done": {"BOOL": False},
        "error": {"NULL": True},
        "tags": {"SS": ["a", "b"]},
        "steps": {"NS": ["1", "2.5"]},
        "input": {"M": {"prompt": {"S": "a fox"}, "n": {"N": "4"}, "deep": {"L": [{"S": "x"}, {"M": {}}]}}},
        "history": {"L": [{"N": "1"}, {"BOOL": True}, {"NULL": True}]},
    }


def test_data_answers_are_the_documents_motos_serializer_writes(server, monkeypatch):
    """The server writes data answers as JSON itself (`_serialized`); moto's serializer, shown the same
    results, writes the same documents, for every operation that takes the fast way."""
    from moto.dynamodb.responses import DynamoHandler
    from moto.dynamodbstreams.responses import DynamoDBStreamsHandler

    from local import dynamodb_server as module

    compared: Counter[str] = Counter()
    by_moto: Counter[str] = Counter()
    motos = module._moto_serialized

    def counted(handler, action_result):
        by_moto[handler._get_action()] += 1
        return motos(handler, action_result)

    def both(handler, action_result):
        status, headers, body = module._serialized(handler, action_result)
        result = action_result
        if isinstance(result, module._UnconvertedResult):
            result = module.DynamoResult(result.result)
        moto_status, moto_headers, moto_body = motos(handler, result)
        assert (status, headers["Content-Type"]) == (moto_status, moto_headers["Content-Type"])
        assert json.loads(body) == json.loads(moto_body), handler._get_action()
        compared[handler._get_action()] += 1
        return status, headers, body

    monkeypatch.setattr(module, "_moto_serialized", counted)
    for handler in (DynamoHandler, DynamoDBStreamsHandler):
        monkeypatch.setattr(handler, "serialized", both)
    dynamodb = client(server.url)
    reader = StreamReader.for_table(dynamodb, client(server.url, "dynamodbstreams"), JOBS)
    items = [every_kind_of_value(f"job-{n}") for n in range(3)]
    keys = [{"job_id": item["job_id"]} for item in items]
    for item in items:
        dynamodb.put_item(TableName=JOBS, Item=item, ReturnConsumedCapacity="TOTAL")
    assert dynamodb.get_item(TableName=JOBS, Key=keys[0], ConsistentRead=True)["Item"] == items[0]
    dynamodb.get_item(TableName=JOBS, Key={"job_id": {"S": "absent"}}, ReturnConsumedCapacity="INDEXES")
    got = dynamodb.batch_get_item(RequestItems={JOBS: {"Keys": [*keys, {"job_id": {"S": "absent"}}]}})
    assert sorted(got["Responses"][JOBS], key=lambda item: item["job_id"]["S"]) == items
    dynamodb.batch_get_item(RequestItems={JOBS: {"Keys": keys[:1], "ProjectionExpression": "job_id, input.prompt"}})
    page = dynamodb.scan(TableName=JOBS, Limit=2)
    dynamodb.scan(TableName=JOBS, ExclusiveStartKey=page["LastEvaluatedKey"], Select="COUNT")
    dynamodb.query(
        TableName=JOBS,
        KeyConditionExpression="job_id = :id",
        ExpressionAttributeValues={":id": {"S": "job-1"}},
        ReturnConsumedCapacity="TOTAL",
    )
    dynamodb.transact_get_items(TransactItems=[{"Get": {"TableName": JOBS, "Key": key}} for key in keys])
    dynamodb.put_item(TableName=JOBS, Item=job("job-0"), ReturnValues="ALL_OLD")
    dynamodb.update_item(
        TableName=JOBS,
        Key=keys[1],
        UpdateExpression="SET #s = :s ADD steps :n",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":s": {"S": "running"}, ":n": {"NS": ["7"]}},
        ReturnValues="ALL_NEW",
    )
    dynamodb.update_item(TableName=JOBS, Key=keys[2], UpdateExpression="REMOVE tags", ReturnValues="UPDATED_OLD")
    dynamodb.delete_item(TableName=JOBS, Key=keys[2], ReturnValues="ALL_OLD")
    writes = [{"PutRequest": {"Item": every_kind_of_value("job-9")}}, {"DeleteRequest": {"Key": keys[1]}}]
    dynamodb.batch_write_item(RequestItems={JOBS: writes})
    create_jobs(dynamodb, ["job-10"])
    records = reader.read()
    assert [record["eventName"] for record in records][-3:] == ["INSERT", "REMOVE", "INSERT"]
    assert records[-1]["dynamodb"]["NewImage"]["job_id"] == {"S": "job-10"}

    assert module._PLAIN_ANSWERS <= set(compared)
    assert not module._PLAIN_ANSWERS & set(by_moto)  # each of them took the fast way
    # Binary values and anything else that is not plain data go to moto's serializer, and arrive whole.
    binary = {**job("binary"), "blob": {"B": b"\x00\xffbytes"}, "blobs": {"BS": [b"\x01", b"\x02"]}}
    dynamodb.put_item(TableName=JOBS, Item=binary)
    assert dynamodb.get_item(TableName=JOBS, Key={"job_id": {"S": "binary"}})["Item"] == binary
    assert dynamodb.describe_table(TableName=JOBS)["Table"]["TableName"] == JOBS
    assert {"GetItem", "DescribeTable"} <= set(by_moto)


def test_item_sizes_and_the_item_size_limit_are_motos(server):
    from moto.dynamodb.models.dynamo_type import DynamoType, Item
    from moto.dynamodb.models.utilities import bytesize

    from local.dynamodb_server import _item_size

    values = {**every_kind_of_value("sized"), "blob": {"B": "AAE="}, "blobs": {"BS": ["AAE=", "Ag=="]}}
    item = Item(DynamoType(values["job_id"]), None, values)
    assert _item_size(item) == sum(bytesize(name) + value.size() for name, value in item.attrs.items())

    dynamodb = client(server.url, config=NO_RETRIES)
    under = {**job("big"), "logs": {"S": "x" * 404_000}}
    dynamodb.put_item(TableName=JOBS, Item=under)
    with pytest.raises(ClientError, match="Item size has exceeded the maximum allowed size"):
        dynamodb.put_item(TableName=JOBS, Item={**under, "more": {"S": "y" * 2_000}})
    with pytest.raises(ClientError, match="size"):
        dynamodb.update_item(
            TableName=JOBS,
            Key={"job_id": {"S": "big"}},
            UpdateExpression="SET more = :more",
            ExpressionAttributeValues={":more": {"S": "y" * 2_000}},
        )
    assert dynamodb.get_item(TableName=JOBS, Key={"job_id": {"S": "big"}})["Item"] == under


# ------------------------------------------------------------------ the journal


def test_writes_wait_for_the_restore_and_stop_when_the_journal_fails(server, monkeypatch):
    dynamodb = client(server.url, config=NO_RETRIES)
    dynamodb.put_item(TableName=JOBS, Item=job("kept"))

    def disk_full(entry: dict) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(server.journal, "append", disk_full)
    with pytest.raises(ClientError) as refused:
        dynamodb.put_item(TableName=JOBS, Item=job("not-on-disk"))
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
    with pytest.raises(ClientError) as stopped:  # fail-stop: nothing is answered that the disk may not hold
        dynamodb.get_item(TableName=JOBS, Key={"job_id": {"S": "kept"}})
    assert stopped.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500


def test_a_torn_tail_is_ignored_and_cut_off_but_a_hole_is_refused(tmp_path):
    path = tmp_path / "journal"
    journal = Journal(path)
    journal.open()
    journal.append({"seq": 1})
    journal.append({"seq": 2})
    journal.close()
    whole = path.read_bytes()

    path.write_bytes(whole + b'{"seq": 3, "bo')
    assert Journal(path).read() == [{"seq": 1}, {"seq": 2}]
    reopened = Journal(path)
    reopened.open()  # cuts the torn line off, so the next line starts on its own
    reopened.append({"seq": 3})
    reopened.close()
    assert Journal(path).read() == [{"seq": 1}, {"seq": 2}, {"seq": 3}]

    path.write_bytes(whole + b"\x00\x00\x00\n")  # zeros a crashed file system left: a tail too
    assert Journal(path).read() == [{"seq": 1}, {"seq": 2}]
    path.write_bytes(b'{"seq": 1}\n{"se\n{"seq": 3}\n')
    with pytest.raises(JournalCorrupt):
        Journal(path).read()


def test_the_journal_is_compacted_after_so_many_writes_or_bytes(tmp_path):
    server = LocalDynamoDB(tmp_path / "state", compact_writes=3)
    try:
        dynamodb = client(server.start(), config=NO_RETRIES)
        make_tables(server.url)
        server.restore()
        for number in range(2):
            dynamodb.put_item(TableName=JOBS, Item=job(f"job-{number}"))
        server.compact_if_due()
        assert len(server.journal.read()) == 2  # not due yet
        dynamodb.put_item(TableName=JOBS, Item=job("job-2"))
        server.compact_if_due()
        assert server.journal.read() == [] and server.journal.size == 0
        assert json.loads(server.snapshot_path.read_text())["sequence"] == 3
        server.compact_bytes = 1  # any write at all is past it
        dynamodb.put_item(TableName=JOBS, Item=job("job-3"))
        server.compact_if_due()
        assert server.journal.read() == [] and json.loads(server.snapshot_path.read_text())["sequence"] == 4
    finally:
        server.stop()
        BackendDict.reset()


# ------------------------------------------------------------- crash and restart


# A server start in a fresh interpreter imports moto, boto3 and the template again (about 1.5 CPU-s, eight
# starts in these tests): one process imports them once and forks each server from that state. A forked
# server is a process of its own, killed by a real SIGKILL, and starts with no moto data (its parent's one
# warm-up server is stopped and moto's data reset before any fork); its parent reaps it and reports how it ended.
FORKING_SERVER = """
import os, signal, sys, tempfile, threading, traceback
from pathlib import Path
from moto.core.base_backend import BackendDict
from local.dynamodb_server import LocalDynamoDB
from local.template import create_tables, load_template
from tests.unit.test_local_dynamodb_server import client

template = load_template()


def serve(state_dir, compact_bytes, started):
    server = LocalDynamoDB(Path(state_dir), compact_bytes=compact_bytes)
    url = server.start()
    create_tables(client(url), template, lambda logical_id: f"jobsync-local-{logical_id}")
    server.restore()
    if started is None:
        server.stop()
        return
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    os.write(started, url.encode())
    os.close(started)
    while not stop.wait(0.01):
        server.compact_if_due()
    server.stop()


# One server started and stopped here first: each fork finds moto's and botocore's models loaded.
with tempfile.TemporaryDirectory() as warm_up:
    serve(warm_up, 1 << 30, None)
BackendDict.reset()
for thread in threading.enumerate():
    if thread is not threading.main_thread():
        thread.join(timeout=60)
assert threading.active_count() == 1, threading.enumerate()  # forking a process with threads is unsafe

for command in sys.stdin:
    verb, *args = command.split()
    if verb == "start":
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(read)
            try:
                serve(args[0], int(args[1]), write)
            except BaseException:
                traceback.print_exc()
                os._exit(1)
            os._exit(0)
        os.close(write)
        with os.fdopen(read) as started:
            print(pid, started.read(), flush=True)
    elif verb == "wait":
        print(os.waitstatus_to_exitcode(os.waitpid(int(args[0]), 0)[1]), flush=True)
"""


class ServerForks:
    """The process that forks servers (FORKING_SERVER), spoken to a line at a time."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", FORKING_SERVER],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'layers' / 'jobsync'}"},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def ask(self, command: str, timeout: float = 120) -> str:
        """The answer to `command`: its line, waited for up to `timeout` seconds."""
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        with selectors.DefaultSelector() as selector:
            selector.register(self.process.stdout, selectors.EVENT_READ)
            if not selector.select(timeout=timeout):
                raise RuntimeError(f"no answer to {command!r} in {timeout} s")
        answer = self.process.stdout.readline().strip()
        assert answer, f"the forking process ended: {self.process.wait()}"
        return answer

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        assert self.process.wait(timeout=60) == 0


@pytest.fixture(scope="module")
def server_forks():
    forks = ServerForks()
    yield forks
    forks.close()


class ServerProcess:
    """The server in its own process over `state_dir`; `compact_bytes` small makes it compact while it works."""

    def __init__(self, forks: ServerForks, state_dir: Path, compact_bytes: int = 1 << 30) -> None:
        self.forks = forks
        pid, _, self.url = forks.ask(f"start {state_dir} {compact_bytes}").partition(" ")
        self.pid = int(pid)
        self.exit_code: int | None = None
        assert self.url.startswith("http://127.0.0.1:"), f"the server did not start: {self.wait()}"
        self.dynamodb = client(self.url, config=NO_RETRIES)

    def running(self) -> bool:
        return self.exit_code is None

    def wait(self) -> int:
        self.exit_code = int(self.forks.ask(f"wait {self.pid}", timeout=60))
        return self.exit_code

    def kill(self) -> None:
        os.kill(self.pid, signal.SIGKILL)
        assert self.wait() == -signal.SIGKILL

    def stop(self) -> None:
        os.kill(self.pid, signal.SIGTERM)
        assert self.wait() == 0


@pytest.fixture
def start_server(tmp_path, server_forks):
    """Starts servers over `tmp_path`; any still running at the end (a test failed) is killed."""
    started: list[ServerProcess] = []

    def start(compact_bytes: int = 1 << 30) -> ServerProcess:
        started.append(ServerProcess(server_forks, tmp_path, compact_bytes))
        return started[-1]

    yield start
    for server in started:
        if server.running():
            server.kill()


def test_every_answered_write_survives_sigkill(start_server):
    first = start_server(compact_bytes=4000)  # compacts now and then while it is written to
    for round_ in range(40):
        create_jobs(first.dynamodb, [f"job-{round_}-a", f"job-{round_}-b"])
    first.dynamodb.update_item(
        TableName=JOBS,
        Key={"job_id": {"S": "job-0-a"}},
        UpdateExpression="SET #s = :running",
        ConditionExpression="#s = :queued",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":running": {"S": "running"}, ":queued": {"S": "queued"}},
    )
    first.dynamodb.delete_item(TableName=JOBS, Key={"job_id": {"S": "job-1-b"}})
    first.kill()

    second = start_server()
    assert counter(second.dynamodb) == 80
    assert job_ids(second.dynamodb) == {f"job-{r}-{x}" for r in range(40) for x in "ab"} - {"job-1-b"}
    running = second.dynamodb.get_item(TableName=JOBS, Key={"job_id": {"S": "job-0-a"}})["Item"]
    assert running["status"] == {"S": "running"}


def test_a_torn_last_journal_line_is_ignored(start_server, tmp_path):
    first = start_server()
    create_jobs(first.dynamodb, ["answered"])
    first.kill()
    entry = {"seq": 2, "key": "local", "region": REGION, "target": "DynamoDB_20120810.PutItem"}
    body = json.dumps({"TableName": JOBS, "Item": job("never-answered")})
    with (tmp_path / "journal").open("a") as journal:
        journal.write(json.dumps({**entry, "body": body})[:-20])  # the process died in the middle of the line

    second = start_server()
    assert job_ids(second.dynamodb) == {"answered"}
    create_jobs(second.dynamodb, ["after"])
    second.kill()

    third = start_server()
    assert job_ids(third.dynamodb) == {"answered", "after"} and counter(third.dynamodb) == 2


def test_compaction_keeps_the_same_contents_and_never_applies_a_write_twice(start_server, tmp_path):
    first = start_server()
    for round_ in range(5):
        create_jobs(first.dynamodb, [f"job-{round_}"])
    first.dynamodb.delete_item(TableName=JOBS, Key={"job_id": {"S": "job-3"}})
    first.kill()
    journal = (tmp_path / "journal").read_bytes()

    second = start_server()
    contents = (job_ids(second.dynamodb), counter(second.dynamodb))
    assert contents == ({"job-0", "job-1", "job-2", "job-4"}, 5)
    second.stop()  # Ctrl-C: one last compaction
    snapshot = json.loads((tmp_path / "dynamodb.json").read_text())
    assert (tmp_path / "journal").read_bytes() == b"" and snapshot["sequence"] == 6

    # A crash after the snapshot was written but before the journal was emptied: its entries are in the snapshot.
    (tmp_path / "journal").write_bytes(journal)
    third = start_server()
    assert (job_ids(third.dynamodb), counter(third.dynamodb)) == contents
