"""template.yaml closes the direct path to the webhook where the per-IP rule exists: a generated secret,
CloudFront adding it as a header on the HTTP API origin, and the webhook function told where to read it
and allowed to. All of it under the web ACL's Condition, so elsewhere nothing changes."""

from __future__ import annotations

import pytest

from jobsync.services import origin_verify
from local import template as cfn
from tests.unit.template_values import PARAMS
from tests.unit.template_values import REFS as BASE_REFS

# What `!Ref AWS::NoValue` stands for until it is dropped, as CloudFormation drops it.
NO_VALUE = object()
SECRET_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:jobsync-origin-verify-AbCdEf"
REFS = {
    **BASE_REFS,
    "HttpApi": "api123",
    "OriginVerifySecret": SECRET_ARN,
    "LogFollowersPushPolicy": "arn:aws:iam::123456789012:policy/push",
    "DashboardBucket.RegionalDomainName": "bucket.s3.us-east-1.amazonaws.com",
    "DashboardOriginAccessControl.Id": "oac",
    "WebhookWebAcl.Arn": "arn:aws:wafv2:us-east-1:123456789012:global/webacl/jobsync-webhook/1",
    "AWS::NoValue": NO_VALUE,
}
ON = ({}, {"AWS::Region": "us-east-1"})
OFF = [
    ({"WebhookRateLimitPerIp": "0"}, {"AWS::Region": "us-east-1"}),  # the rule turned off
    ({}, {"AWS::Region": "eu-west-1"}),  # no CloudFront web ACL outside us-east-1
]


@pytest.fixture(scope="module")
def template() -> dict:
    return cfn.load_template()


def resolved(template: dict, node: object, parameters: dict, pseudo: dict) -> object:
    value = cfn.resolve(node, template, parameter_values={**PARAMS, **parameters}, refs=REFS, pseudo=pseudo)
    return _without_no_value(value)


def _without_no_value(value: object) -> object:
    if isinstance(value, dict):
        return {key: _without_no_value(item) for key, item in value.items() if item is not NO_VALUE}
    if isinstance(value, list):
        return [_without_no_value(item) for item in value if item is not NO_VALUE]
    return value


def api_origin(template: dict, parameters: dict, pseudo: dict) -> dict:
    origins = template["Resources"]["DashboardDistribution"]["Properties"]["DistributionConfig"]["Origins"]
    (origin,) = [origin for origin in origins if origin["Id"] == "http-api"]
    return resolved(template, origin, parameters, pseudo)  # type: ignore[return-value]


def webhook_function(template: dict, parameters: dict, pseudo: dict) -> dict:
    """The webhook function's environment and its conditional policies, resolved (the rest names tables)."""
    properties = template["Resources"]["ReplicateWebhookFunction"]["Properties"]
    conditional = [policy for policy in properties["Policies"] if isinstance(policy, dict) and "Fn::If" in policy]
    wanted = {"Environment": properties["Environment"], "Policies": conditional}
    return resolved(template, wanted, parameters, pseudo)  # type: ignore[return-value]


def test_the_secret_is_generated_under_the_web_acls_condition(template: dict) -> None:
    secret = template["Resources"]["OriginVerifySecret"]
    assert secret["Type"] == "AWS::SecretsManager::Secret"
    assert secret["Condition"] == template["Resources"]["WebhookWebAcl"]["Condition"] == "WebhookRateLimitOn"
    generated = secret["Properties"]["GenerateSecretString"]
    assert generated["GenerateStringKey"] == origin_verify.CURRENT_KEY  # the key the function reads
    assert generated["PasswordLength"] >= 32
    assert "SecretString" not in secret["Properties"]  # nobody types it: no value in a parameter or the template
    assert template["Outputs"]["OriginVerifySecretArn"]["Condition"] == "WebhookRateLimitOn"


def test_cloudfront_adds_the_secret_as_a_header_on_the_api_origin_only(template: dict) -> None:
    headers = api_origin(template, *ON)["OriginCustomHeaders"]
    assert headers == [
        {
            "HeaderName": "X-Jobsync-Origin-Verify",
            "HeaderValue": f"{{{{resolve:secretsmanager:{SECRET_ARN}:SecretString:current}}}}",
        }
    ]
    assert headers[0]["HeaderName"].lower() == origin_verify.HEADER
    # A rotation pins the version that holds the new value: the reference changes, so CloudFormation reads it.
    pinned = api_origin(template, {"OriginVerifySecretVersionId": "a1b2c3d4-5678-90ab-cdef-EXAMPLE11111"}, ON[1])
    assert pinned["OriginCustomHeaders"][0]["HeaderValue"] == (
        f"{{{{resolve:secretsmanager:{SECRET_ARN}:SecretString:current::a1b2c3d4-5678-90ab-cdef-EXAMPLE11111}}}}"
    )
    origins = template["Resources"]["DashboardDistribution"]["Properties"]["DistributionConfig"]["Origins"]
    assert [origin["Id"] for origin in origins if "OriginCustomHeaders" in origin] == ["http-api"]  # not to S3


def test_the_webhook_function_reads_the_secret_and_may(template: dict) -> None:
    function = webhook_function(template, *ON)
    assert function["Environment"]["Variables"]["JOBSYNC_ORIGIN_VERIFY_SECRET_ARN"] == SECRET_ARN
    readable = [policy["AWSSecretsManagerGetSecretValuePolicy"]["SecretArn"] for policy in function["Policies"]
                if isinstance(policy, dict) and "AWSSecretsManagerGetSecretValuePolicy" in policy]  # fmt: skip
    assert SECRET_ARN in readable
    # No other function may read it.
    for name, resource in template["Resources"].items():
        if resource["Type"] == cfn.SERVERLESS_FUNCTION and name != "ReplicateWebhookFunction":
            assert "OriginVerifySecret" not in repr(resource["Properties"]), name


@pytest.mark.parametrize(("parameters", "pseudo"), OFF)
def test_without_the_per_ip_rule_nothing_is_added_and_every_webhook_is_taken(
    template: dict, parameters: dict, pseudo: dict
) -> None:
    assert "OriginCustomHeaders" not in api_origin(template, parameters, pseudo)  # AWS::NoValue drops it
    function = webhook_function(template, parameters, pseudo)
    assert function["Environment"]["Variables"]["JOBSYNC_ORIGIN_VERIFY_SECRET_ARN"] == ""  # the check is off
    assert SECRET_ARN not in repr(function["Policies"])


def test_the_local_stack_leaves_the_check_off(template: dict) -> None:
    # The local stack gives every function the Globals' environment only (local/stack.py): its gateway is
    # the one way in, with the per-IP rule on every webhook, so no header is added and none is required.
    assert "JOBSYNC_ORIGIN_VERIFY_SECRET_ARN" not in template["Globals"]["Function"]["Environment"]["Variables"]
