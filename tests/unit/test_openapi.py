"""The OpenAPI document: self-contained, valid, and saying every status each route can answer."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import jsonschema_rs
import pytest

from jobsync.api.openapi import openapi_document, statuses
from jobsync.api.routes import ROUTES, Route
from jobsync.domain import identifiers
from jobsync.domain.status import JobStatus
from jobsync.providers.registry import PROVIDERS

DOCUMENT = openapi_document()
OPERATIONS = [(route, DOCUMENT["paths"][route.path][route.method.lower()]) for route in ROUTES]
IDS = [route.key for route in ROUTES]


def _refs(node: Any, where: str = "#") -> Iterator[tuple[str, str]]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield where, value
            else:
                yield from _refs(value, f"{where}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _refs(value, f"{where}/{index}")


def _resolve(document: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), f"{ref} points outside the document"
    node: Any = document
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        assert isinstance(node, dict) and part in node, f"{ref} does not resolve (no {part!r})"
        node = node[part]
    return node


def test_every_ref_resolves_inside_the_document():
    refs = list(_refs(DOCUMENT))
    assert refs, "the walk found no $ref at all"
    for where, ref in refs:
        assert not ref.startswith("#/$defs"), f"{where}: {ref} is a pydantic-local reference"
        _resolve(DOCUMENT, ref)
    assert "$defs" not in str(DOCUMENT)


def test_the_walk_would_see_a_dangling_ref():
    broken = {"paths": {"/x": {"get": {"parameters": [{"schema": {"$ref": "#/$defs/JobStatus"}}]}}}}
    [(_, ref)] = list(_refs(broken))
    assert ref == "#/$defs/JobStatus"
    with pytest.raises(AssertionError, match="does not resolve"):
        _resolve(broken, ref)


def test_the_status_filter_is_the_seven_statuses_and_the_provider_filter_an_enum():
    parameters = {
        parameter["name"]: parameter for parameter in DOCUMENT["paths"]["/api/cloud/jobs"]["get"]["parameters"]
    }
    status = _resolve(DOCUMENT, parameters["status"]["schema"]["$ref"])
    assert sorted(status["enum"]) == sorted(member.value for member in JobStatus)
    assert parameters["provider"]["schema"] == {"type": "string", "enum": list(PROVIDERS)}
    assert all(parameter["required"] is False for parameter in parameters.values())


def test_no_parameter_is_documented_as_nullable():
    # A query or path parameter is absent or a string; "null" would be sent as the text "null".
    for route, operation in OPERATIONS:
        for parameter in operation["parameters"]:
            assert "null" not in str(parameter["schema"]), (route.key, parameter)


@pytest.mark.parametrize(("route", "operation"), OPERATIONS, ids=IDS)
def test_each_operation_documents_every_status_it_can_answer(route: Route, operation: dict[str, Any]):
    documented = {int(code) for code in operation["responses"]}
    expected = {200, *statuses(route)}
    assert documented == expected
    if route.query or route.body or route.path_params:
        assert 400 in documented
    if route.path_params:
        assert 404 in documented
    if route.authenticated:
        assert 401 in documented
    if route.function not in ("health", "openapi"):
        assert 503 in documented  # every other route reads or writes DynamoDB
    for code in documented - {200}:
        answer = operation["responses"][str(code)]
        assert answer["description"]
        assert answer["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ErrorOut"}
    assert "application/json" in operation["responses"]["200"]["content"]


def test_routes_that_talk_to_the_provider_document_502():
    provider_routes = {"list_jobs", "sync_jobs", "replicate_webhook"}  # the webhook may fetch its secret
    for route, operation in OPERATIONS:
        if route.function in provider_routes:
            assert "502" in operation["responses"], route.key


def test_routes_that_need_more_than_read_document_403():
    for route, operation in OPERATIONS:
        needs_more = route.scope is not None and route.scope.value != "read"
        through_cloudfront_only = route.function == "replicate_webhook"  # services/origin_verify.py
        assert ("403" in operation["responses"]) is (needs_more or through_cloudfront_only), route.key


def test_every_job_id_parameter_is_the_one_definition():
    for route, operation in OPERATIONS:
        for parameter in operation["parameters"]:
            if parameter["name"] == "job_id":
                assert parameter["in"] == "path" and parameter["required"] is True
                assert parameter["schema"] == identifiers.json_schema(), route.key
    assert any("{job_id}" in route.path for route, _ in OPERATIONS)


def test_the_webhook_documents_its_signature_headers_and_body():
    operation = DOCUMENT["paths"]["/api/webhooks/replicate"]["post"]
    headers = {parameter["name"]: parameter for parameter in operation["parameters"] if parameter["in"] == "header"}
    assert set(headers) == {"webhook-id", "webhook-timestamp", "webhook-signature"}
    assert all(parameter["required"] for parameter in headers.values())
    assert headers["webhook-id"]["schema"] == identifiers.json_schema()
    body = operation["requestBody"]["content"]["application/json"]["schema"]
    assert body["required"] == ["id"] and body["properties"]["id"] == identifiers.json_schema()
    assert operation["security"] == []


def test_path_parameters_match_the_path_templates():
    for route, operation in OPERATIONS:
        in_path = set(re.findall(r"\{(\w+)\}", route.path))
        documented = {parameter["name"] for parameter in operation["parameters"] if parameter["in"] == "path"}
        assert in_path == documented, route.key


def test_every_schema_in_the_document_is_a_valid_json_schema():
    components = DOCUMENT["components"]["schemas"]
    for name, schema in components.items():
        # Each component checked with the rest of the document beside it, so that its refs resolve.
        jsonschema_rs.validator_for({**schema, "components": {"schemas": components}})
        assert name.isidentifier()
