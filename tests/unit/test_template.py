"""template.yaml against the route table, the table design and SAM's own validator."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import boto3
import pytest
from moto import mock_aws
from moto.core.config import default_user_config

from jobsync.api.routes import DEPLOYED_ROUTES
from local import template as cfn
from tests.unit.template_values import PARAMS, REFS

ROOT = Path(__file__).resolve().parents[2]
SAM = ROOT / ".tools" / "sam" / "bin" / "sam"
NON_ROUTE_FUNCTIONS = {"poller", "broadcaster", "ws_connect", "ws_disconnect", "ws_default", "history_importer"}
NON_ROUTE_FUNCTIONS |= {"tail_keeper"}  # ended jobs' final log tails, handed off to
NON_ROUTE_FUNCTIONS |= {"notifier", "notify_webhook"}  # the jobs stream's notifier and its webhook channel
JOB_INDEXES = {
    "by_created": "all_jobs",
    "by_status": "status",
    "by_provider": "provider",
    "by_provider_status": "provider_status_key",
}


@pytest.fixture(scope="module")
def template() -> dict:
    return cfn.load_template()


def _logical_id(folder: str) -> str:
    return "".join(part.capitalize() for part in folder.split("_")) + "Function"


# ------------------------------------------------------------------ loading


def test_short_tags_load_as_long_form(tmp_path: Path) -> None:
    source = tmp_path / "t.yaml"
    source.write_text(
        "Resources:\n"
        "  A:\n"
        "    Type: X\n"
        "    Properties:\n"
        "      R: !Ref B\n"
        "      G: !GetAtt B.Arn\n"
        "      S: !Sub 'x-${B}'\n"
        "      I: !If [C, !Join ['-', [a, b]], !Select [0, [z]]]\n"
        "      E: !Not [!Equals [!Ref P, 'v']]\n"
        "      M: !FindInMap [Map, k1, k2]\n"
        "      N: !Condition C\n"
    )
    props = cfn.load_template(source)["Resources"]["A"]["Properties"]
    assert props["R"] == {"Ref": "B"}
    assert props["G"] == {"Fn::GetAtt": ["B", "Arn"]}
    assert props["S"] == {"Fn::Sub": "x-${B}"}
    assert props["I"] == {"Fn::If": ["C", {"Fn::Join": ["-", ["a", "b"]]}, {"Fn::Select": [0, ["z"]]}]}
    assert props["E"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "P"}, "v"]}]}
    assert props["M"] == {"Fn::FindInMap": ["Map", "k1", "k2"]}
    assert props["N"] == {"Condition": "C"}


# -------------------------------------------------------------------- HTTP API


def _checks_tokens(template: dict, logical_id: str) -> bool:
    return {"Ref": "TokenCheckPolicy"} in template["Resources"][logical_id]["Properties"].get("Policies", [])


def test_every_route_is_in_the_template_with_its_function_and_auth(template: dict) -> None:
    deployed = {route.key: route for route in cfn.http_routes(template)}
    for route in DEPLOYED_ROUTES:
        assert route.key in deployed, f"{route.key} is missing from template.yaml"
        found = deployed[route.key]
        assert (found.method, found.path) == (route.method, route.path)
        assert found.function.folder == route.function
        assert found.code_uri == f"functions/{route.function}/"
        assert found.function_id == _logical_id(route.function)
        assert found.handler == "app.lambda_handler"
        # No API Gateway authorizer: the function checks the token (so it may read the tokens table).
        assert found.authenticated is False and found.authorizer is None, route.key
        assert _checks_tokens(template, found.function_id) is route.authenticated, route.key


def test_no_http_route_beyond_the_route_table(template: dict) -> None:
    assert sorted(route.key for route in cfn.http_routes(template)) == sorted(route.key for route in DEPLOYED_ROUTES)


def test_http_events_use_payload_format_2(template: dict) -> None:
    for logical_id, resource in template["Resources"].items():
        for event in (resource.get("Properties") or {}).get("Events", {}).values():
            if event["Type"] == "HttpApi":
                assert event["Properties"].get("PayloadFormatVersion", "2.0") == "2.0", logical_id


def test_no_authorizer_and_every_route_throttled(template: dict) -> None:
    api = template["Resources"]["HttpApi"]["Properties"]
    # A missing or refused token must reach the function's own 401/403 in the contract's shape.
    assert "Auth" not in api and cfn.authorizer(template) is None
    assert api["DefaultRouteSettings"] == {
        "ThrottlingRateLimit": {"Ref": "ThrottleRateLimit"},
        "ThrottlingBurstLimit": {"Ref": "ThrottleBurstLimit"},
    }
    webhook = template["Resources"]["ReplicateWebhookFunction"]["Properties"]["Events"]["Api"]["Properties"]
    assert webhook["RouteSettings"] == {
        "ThrottlingRateLimit": {"Ref": "WebhookThrottleRateLimit"},
        "ThrottlingBurstLimit": {"Ref": "WebhookThrottleBurstLimit"},
    }
    stage = template["Resources"]["WebSocketStage"]["Properties"]
    assert stage["DefaultRouteSettings"] == api["DefaultRouteSettings"]
    parameters = template["Parameters"]
    assert parameters["WebhookThrottleRateLimit"]["Default"] < parameters["ThrottleRateLimit"]["Default"]
    assert _checks_tokens(template, "WsConnectFunction")  # $connect needs the read scope


def test_the_token_check_may_read_a_token_and_record_its_use_only(template: dict) -> None:
    policy = template["Resources"]["TokenCheckPolicy"]["Properties"]["PolicyDocument"]
    assert policy["Statement"] == [
        {
            "Effect": "Allow",
            "Action": ["dynamodb:GetItem", "dynamodb:UpdateItem"],
            "Resource": {"Fn::GetAtt": ["TokensTable", "Arn"]},
        }
    ]


def test_function_folders_are_routes_or_the_known_others(template: dict) -> None:
    folders = {spec.folder for spec in cfn.functions(template).values()}
    route_folders = {route.function for route in DEPLOYED_ROUTES}
    assert folders == route_folders | NON_ROUTE_FUNCTIONS
    for logical_id, spec in cfn.functions(template).items():
        assert logical_id == _logical_id(spec.folder)
        assert spec.code_uri == f"functions/{spec.folder}/"
        assert spec.layers == ("layers/jobsync/",)


def test_every_function_gets_the_settings_the_code_reads(template: dict) -> None:
    expected = {
        "JOBS_TABLE_NAME",
        "CONNECTIONS_TABLE_NAME",
        "STATE_TABLE_NAME",
        "TOKENS_TABLE_NAME",
        "JOBSYNC_API_TOKEN_HASHES",
        "REPLICATE_API_TOKEN_SECRET_ARN",
        "REPLICATE_API_BASE_URL",
        "JOBSYNC_WEBHOOK_URL",
        "SIMPLETUNER_JOB_POLL_INTERVAL",
        "JOBSYNC_POLL_SCHEDULE_PERIOD_SECONDS",
        "JOBSYNC_POLLING_ENABLED",
        "JOBSYNC_HARDWARE_MAP",
        "JOBSYNC_DEFAULT_HARDWARE",
        "JOBSYNC_MAX_CONNECTIONS_PER_IP",
        "JOBSYNC_SYNC_CAP",
        "JOBSYNC_WEBSOCKET_URL",
        "JOBSYNC_WEBSOCKET_MANAGEMENT_URL",
        "POWERTOOLS_SERVICE_NAME",
        "POWERTOOLS_METRICS_NAMESPACE",
        "POWERTOOLS_LOG_LEVEL",
    }
    for spec in cfn.functions(template).values():
        assert expected <= set(spec.environment), spec.logical_id


def test_environment_resolves_with_parameters(template: dict) -> None:
    spec = cfn.function_spec(template, "PollerFunction")
    env = cfn.resolve(spec.environment, template, parameter_values=PARAMS, refs=REFS)
    assert env["JOBS_TABLE_NAME"] == "jobs"
    assert env["SIMPLETUNER_JOB_POLL_INTERVAL"] == "30"
    assert env["JOBSYNC_POLL_SCHEDULE_PERIOD_SECONDS"] == "60"
    assert env["JOBSYNC_POLLING_ENABLED"] == ""
    assert env["JOBSYNC_WEBSOCKET_URL"] == "wss://abc.execute-api.us-east-1.amazonaws.com/live"
    assert env["JOBSYNC_WEBSOCKET_MANAGEMENT_URL"] == "https://abc.execute-api.us-east-1.amazonaws.com/live"
    forced = cfn.resolve(spec.environment, template, parameter_values={**PARAMS, "PollingMode": "false"}, refs=REFS)
    assert forced["JOBSYNC_POLLING_ENABLED"] == "false"
    with pytest.raises(cfn.Unresolvable):
        cfn.resolve(spec.environment, template, refs=REFS)  # ApiTokenHashes has no default


# ---------------------------------------------------------- WebSocket, schedule, stream


def test_websocket_routes(template: dict) -> None:
    routes = {key: spec.logical_id for key, spec in cfn.websocket_routes(template).items()}
    assert routes == {
        "$connect": "WsConnectFunction",
        "$disconnect": "WsDisconnectFunction",
        "$default": "WsDefaultFunction",
    }


def test_poller_schedule(template: dict) -> None:
    (schedule,) = cfn.scheduled_functions(template)
    assert schedule.function.logical_id == "PollerFunction"
    assert schedule.input == {
        "source": "jobsync.schedule",
        "action": "poll_active_jobs",
        "scheduled_time": "<aws.scheduler.scheduled-time>",  # filled in by EventBridge Scheduler
    }
    sample = json.loads((ROOT / "events" / "poller.json").read_text())
    assert sample == {**schedule.input, "scheduled_time": sample["scheduled_time"]}
    assert sample["scheduled_time"].endswith("Z")
    expression = cfn.resolve(schedule.expression, template)
    assert expression == "rate(1 minute)"
    assert cfn.rate_seconds(expression) == 60
    period = cfn.resolve(schedule.function.environment["JOBSYNC_POLL_SCHEDULE_PERIOD_SECONDS"], template)
    assert int(period) == cfn.rate_seconds(expression)  # the poller covers exactly the time between two firings
    assert schedule.function.timeout > 60


def test_broadcaster_consumes_the_jobs_stream(template: dict) -> None:
    consumers = {consumer.function.logical_id: consumer for consumer in cfn.stream_consumers(template)}
    assert set(consumers) == {"BroadcasterFunction", "NotifierFunction"}
    consumer = consumers["BroadcasterFunction"]
    assert consumer.function.logical_id == "BroadcasterFunction"
    assert consumer.table_id == "JobsTable"
    assert consumer.batch_size == 100
    assert consumer.starting_position == "LATEST"
    assert consumer.bisect_on_error is True


# ----------------------------------------------------------------------- tables


def test_jobs_table_has_the_stream_and_the_four_indexes(template: dict) -> None:
    spec = cfn.table_specs(template)["JobsTable"]
    kwargs = spec.create_kwargs
    assert kwargs["StreamSpecification"] == {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
    assert kwargs["KeySchema"] == [{"AttributeName": "job_id", "KeyType": "HASH"}]
    indexes = {index["IndexName"]: index for index in kwargs["GlobalSecondaryIndexes"]}
    assert set(indexes) == set(JOB_INDEXES)
    for name, hash_key in JOB_INDEXES.items():
        assert indexes[name]["KeySchema"] == [
            {"AttributeName": hash_key, "KeyType": "HASH"},
            {"AttributeName": "created_sort", "KeyType": "RANGE"},
        ]
        assert indexes[name]["Projection"] == {"ProjectionType": "ALL"}
    assert spec.ttl_attribute is None


def test_table_specs_carry_ttl(template: dict) -> None:
    specs = cfn.table_specs(template)
    assert set(specs) == {"JobsTable", "ConnectionsTable", "StateTable", "TokensTable"}
    assert specs["ConnectionsTable"].ttl_attribute == "expires_at"
    assert specs["StateTable"].ttl_attribute == "expires_at"
    assert specs["TokensTable"].ttl_attribute == "purge_at"
    for spec in specs.values():
        assert spec.create_kwargs["BillingMode"] == "PAY_PER_REQUEST"


@pytest.fixture()
def dynamodb(monkeypatch: pytest.MonkeyPatch):
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL_DYNAMODB", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    # boto3's session kept (moto resets it by default: its models loaded again); a fresh moto all the same
    with mock_aws(config={"core": {**default_user_config["core"], "reset_boto3_session": False}}):
        yield boto3.client("dynamodb", region_name="us-east-1")


def test_create_tables_under_moto(template: dict, dynamodb) -> None:
    names = cfn.create_tables(dynamodb, template, lambda logical_id: f"test-{logical_id}")
    assert names == {
        "JobsTable": "test-JobsTable",
        "ConnectionsTable": "test-ConnectionsTable",
        "StateTable": "test-StateTable",
        "TokensTable": "test-TokensTable",
    }
    assert set(dynamodb.list_tables()["TableNames"]) == set(names.values())

    for logical_id in ("ConnectionsTable", "StateTable"):
        ttl = dynamodb.describe_time_to_live(TableName=names[logical_id])["TimeToLiveDescription"]
        assert ttl["TimeToLiveStatus"] == "ENABLED"
        assert ttl["AttributeName"] == "expires_at"

    jobs = dynamodb.describe_table(TableName=names["JobsTable"])["Table"]
    assert jobs["StreamSpecification"]["StreamViewType"] == "NEW_AND_OLD_IMAGES"
    assert jobs.get("LatestStreamArn")

    item = {
        "job_id": {"S": "r8-job-1"},
        "all_jobs": {"S": "job"},
        "status": {"S": "running"},
        "provider": {"S": "replicate"},
        "provider_status_key": {"S": "replicate#running"},
        "created_sort": {"S": "2025-03-12T18:55:02.412000Z#r8-job-1"},
    }
    dynamodb.put_item(TableName=names["JobsTable"], Item=item)
    for index, hash_key in JOB_INDEXES.items():
        found = dynamodb.query(
            TableName=names["JobsTable"],
            IndexName=index,
            KeyConditionExpression="#h = :h AND begins_with(created_sort, :day)",
            ExpressionAttributeNames={"#h": hash_key},
            ExpressionAttributeValues={":h": item[hash_key], ":day": {"S": "2025-03-12"}},
        )["Items"]
        assert [row["job_id"]["S"] for row in found] == ["r8-job-1"], index

    dynamodb.put_item(
        TableName=names["ConnectionsTable"],
        Item={"connection_id": {"S": "Gq4yXbTzIAMCJzA="}, "channel": {"S": "jobs"}, "expires_at": {"N": "1741813511"}},
    )
    found = dynamodb.query(
        TableName=names["ConnectionsTable"],
        IndexName="by_channel",
        KeyConditionExpression="channel = :c",
        ExpressionAttributeValues={":c": {"S": "jobs"}},
    )["Items"]
    assert [row["connection_id"]["S"] for row in found] == ["Gq4yXbTzIAMCJzA="]

    dynamodb.put_item(TableName=names["StateTable"], Item={"pk": {"S": "settings#polling"}, "enabled": {"BOOL": False}})
    assert dynamodb.get_item(TableName=names["StateTable"], Key={"pk": {"S": "settings#polling"}})["Item"]


def test_create_tables_is_idempotent(template: dict, dynamodb) -> None:
    first = cfn.create_tables(dynamodb, template, lambda logical_id: f"again-{logical_id}")
    dynamodb.put_item(TableName=first["StateTable"], Item={"pk": {"S": "kept"}})
    assert cfn.create_tables(dynamodb, template, lambda logical_id: f"again-{logical_id}") == first
    assert dynamodb.get_item(TableName=first["StateTable"], Key={"pk": {"S": "kept"}})["Item"]


# ------------------------------------------------------------------ sample events


def test_every_function_has_a_sample_event(template: dict) -> None:
    for spec in cfn.functions(template).values():
        path = ROOT / "events" / f"{spec.folder}.json"
        assert path.is_file(), f"events/{spec.folder}.json is missing"
        json.loads(path.read_text())


def test_http_sample_events_match_their_routes(template: dict) -> None:
    for route in cfn.http_routes(template):
        event = json.loads((ROOT / "events" / f"{route.function.folder}.json").read_text())
        assert event["version"] == "2.0"
        assert event["routeKey"] == route.key
        assert route.method in (event["requestContext"]["http"]["method"], "ANY")
        assert event["isBase64Encoded"] is False
        assert "authorizer" not in event["requestContext"]  # no API Gateway authorizer runs before a function
        protected = next(r for r in DEPLOYED_ROUTES if r.key == route.key).authenticated
        assert (event["headers"].get("authorization") == "Bearer test-token") is protected, route.key


def test_websocket_sample_events_match_their_routes(template: dict) -> None:
    for route_key, spec in cfn.websocket_routes(template).items():
        event = json.loads((ROOT / "events" / f"{spec.folder}.json").read_text())
        assert event["requestContext"]["routeKey"] == route_key


# --------------------------------------------------------------------- SAM CLI


def test_sam_validate_lint() -> None:
    if not SAM.exists():
        pytest.skip(f"SAM CLI not installed at {SAM} (the Makefile installs it)")
    env = {**os.environ, "SAM_CLI_TELEMETRY": "0"}
    result = subprocess.run(
        [str(SAM), "validate", "--lint", "--template", str(ROOT / "template.yaml"), "--region", "us-east-1"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_no_secret_reaches_a_functions_environment(template: dict) -> None:
    for spec in cfn.functions(template).values():
        assert "REPLICATE_API_TOKEN" not in spec.environment
        assert "REPLICATE_WEBHOOK_SECRET" not in spec.environment
    no_echo = {name for name, p in template["Parameters"].items() if p.get("NoEcho")}
    assert no_echo == {"ApiTokenHashes", "NotifyWebhookUrl"}  # digests, not tokens; the URL goes to a secret


def test_a_failed_poller_run_is_not_retried_over_the_next_and_lands_in_the_dead_letter_queue(template: dict) -> None:
    config = template["Resources"]["PollerFunction"]["Properties"]["EventInvokeConfig"]
    assert config["MaximumRetryAttempts"] == 0
    destination = config["DestinationConfig"]["OnFailure"]
    assert destination == {"Type": "SQS", "Destination": {"Fn::GetAtt": ["PollerDeadLetterQueue", "Arn"]}}


def test_unknown_paths_reach_the_not_found_function_without_a_token(template: dict) -> None:
    catch_all = {route.key: route for route in cfn.http_routes(template)}["ANY /{proxy+}"]
    assert catch_all.function.folder == "not_found" and catch_all.authenticated is False


def _dynamodb_actions(template: dict) -> dict[str, set[str]]:
    actions: dict[str, set[str]] = {}
    for logical_id, spec in template["Resources"].items():
        if spec["Type"] != "AWS::Serverless::Function":
            continue
        for policy in spec["Properties"].get("Policies", []):
            assert not any(name.startswith("DynamoDB") for name in policy), f"{logical_id} uses a broad policy template"
            for statement in policy.get("Statement", []):
                listed = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
                actions.setdefault(logical_id, set()).update(a for a in listed if a.startswith("dynamodb:"))
    return actions


def test_functions_get_only_the_dynamodb_actions_they_make(template: dict) -> None:
    actions = _dynamodb_actions(template)
    granted = set().union(*actions.values())
    assert "dynamodb:Scan" not in granted and not any("*" in action for action in granted)
    assert actions["GetJobFunction"] == {"dynamodb:GetItem"}
    assert actions["MetricsFunction"] == {"dynamodb:GetItem"}
    assert "dynamodb:DeleteItem" not in actions["ListJobsFunction"]


# --------------------------------------------------------------------- the build


def _requirement_names(path: Path) -> set[str]:
    names = set()
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            names.add(re.split(r"[\[=<>~!; ]", line, maxsplit=1)[0].lower().replace("_", "-"))
    return names


def test_the_layer_leaves_boto3_and_botocore_to_the_runtime() -> None:
    """A layer's botocore (aws-xray-sdk pulled in 30 MB of it) would shadow the runtime's own boto3."""
    names = _requirement_names(ROOT / "layers" / "jobsync" / "requirements.txt")
    assert names and not names & {"boto3", "botocore", "aws-xray-sdk", "s3transfer"}
    sources = [*(ROOT / "functions").glob("*/app.py"), *(ROOT / "layers" / "jobsync" / "jobsync").rglob("*.py")]
    for source in sources:
        uses = re.search(r"\bTracer\(|^\s*(from|import) [^\n]*\b(Tracer|aws_xray_sdk)\b", source.read_text(), re.M)
        assert uses is None, f"{source} needs aws-xray-sdk in the layer"


def test_traced_functions_are_traced_by_lambda_itself(template: dict) -> None:
    active = {
        logical_id
        for logical_id, resource in template["Resources"].items()
        if (resource.get("Properties") or {}).get("Tracing") == "Active"
    }
    assert active == {"PollerFunction", "SyncJobsFunction"}


def test_every_function_folder_has_the_requirements_file_sam_build_expects(template: dict) -> None:
    """Without one, `sam build` warns "requirements.txt file not found" once per function."""
    for spec in cfn.functions(template).values():
        requirements = ROOT / spec.code_uri / "requirements.txt"
        assert requirements.is_file(), f"{requirements} is missing"
        assert _requirement_names(requirements) == set(), f"{requirements}: the layer brings every dependency"


def test_samconfig_names_only_parameters_the_template_has(template: dict) -> None:
    text = (ROOT / "samconfig.toml").read_text()
    named = set(re.findall(r"\b[A-Z][a-z]+(?:[A-Z][a-z0-9]*)+\b", text)) - {"NoEcho"}  # CloudFormation's word
    assert {"ApiTokenHashes", "ReplicateApiTokenSecretArn"} <= named
    assert named <= set(template["Parameters"]), named - set(template["Parameters"])
