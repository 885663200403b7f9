"""The OpenAPI document, built from the same route table the handlers use.

Self-contained: every schema a route's models use (an enum such as JobStatus
included) is a component of the document, and every `$ref` points at one.
Each operation lists every status it can answer, errors with the contract's
error shape.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from jobsync.api import models
from jobsync.api.routes import REPLICATE_WEBHOOK, ROUTES, Route
from jobsync.auth import Scope
from jobsync.domain import identifiers
from jobsync.domain.webhook_signature import ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER

_REF = "#/components/schemas/{model}"

_ERROR_TEXT = {
    400: "Bad input: a parameter, header or body outside what this operation accepts",
    401: "Missing or invalid token (for the webhook: missing, wrong or stale signature)",
    403: "The token's scope does not allow this operation (for the webhook: it did not come through CloudFront)",
    404: "Not found",
    409: "The job has already ended",
    502: "The provider failed or refused our credentials",
    503: "The job store is unavailable or the provider is throttling us (Retry-After says when to retry)",
}

# Open routes that answer without reading or writing DynamoDB: nothing there can be unavailable. Every
# other route reads a store (the token check of an authenticated route included).
_STORELESS = {"health", "openapi"}

# Standard Webhooks headers the webhook route requires (the signature proves the sender).
_WEBHOOK_HEADERS = (
    (ID_HEADER, identifiers.json_schema(), "The message id; a replay of one already applied changes nothing"),
    (TIMESTAMP_HEADER, {"type": "string", "pattern": "^[0-9]{1,15}$"}, "Unix seconds; at most 300 s off"),
    (SIGNATURE_HEADER, {"type": "string", "minLength": 1}, "Space-separated `v1,<base64 HMAC-SHA256>` entries"),
)

_WEBHOOK_BODY = {"type": "object", "required": ["id"], "properties": {"id": identifiers.json_schema()}}


def statuses(route: Route) -> list[int]:
    """Every status `route` can answer besides 200."""
    codes = set(route.errors)
    if route.query is not None or route.body is not None or route.path_params is not None:
        codes.add(400)  # the models refuse what they do not accept
    if route.path_params is not None:
        codes.add(404)  # every path parameter names something (a job, a token) that may not exist
    if route.authenticated:
        codes.add(401)
    if route.scope is not None and route.scope is not Scope.READ:
        codes.add(403)  # every valid token may read; only a wider scope can be missing
    if route.function not in _STORELESS:
        codes.add(503)
    return sorted(codes)


def _absorb(schema: dict[str, Any], components: dict[str, Any]) -> dict[str, Any]:
    """`schema` with its `$defs` moved into the document's components (its refs already point there)."""
    for name, definition in schema.pop("$defs", {}).items():
        components[name] = definition
    return schema


def _schema(model: type[BaseModel], components: dict[str, Any]) -> dict[str, Any]:
    components[model.__name__] = _absorb(model.model_json_schema(ref_template=_REF), components)
    return {"$ref": _REF.format(model=model.__name__)}


def _parameter_schema(prop: dict[str, Any]) -> dict[str, Any]:
    """A parameter's property schema as sent: never null (an absent parameter is what None means), no title."""
    schema = {key: value for key, value in prop.items() if key not in ("title", "description")}
    branches = schema.pop("anyOf", None)
    if branches is not None:
        kept = [branch for branch in branches if branch != {"type": "null"}]
        schema = {**(kept[0] if len(kept) == 1 else {"anyOf": kept}), **schema}
    if schema.get("default", 0) is None:
        del schema["default"]
    return schema


def _parameters(route: Route, components: dict[str, Any]) -> list[dict[str, Any]]:
    parameters = []
    for model, where in ((route.path_params, "path"), (route.query, "query")):
        if model is None:
            continue
        schema = _absorb(model.model_json_schema(ref_template=_REF), components)
        required = set(schema.get("required", ()))
        for name, prop in schema.get("properties", {}).items():
            parameter = {
                "name": name,
                "in": where,
                "required": where == "path" or name in required,
                "schema": _parameter_schema(prop),
            }
            if "description" in prop:
                parameter["description"] = prop["description"]
            parameters.append(parameter)
    if route is REPLICATE_WEBHOOK:
        parameters += [
            {"name": name, "in": "header", "required": True, "schema": schema, "description": description}
            for name, schema, description in _WEBHOOK_HEADERS
        ]
    return parameters


def _operation(route: Route, components: dict[str, Any]) -> dict[str, Any]:
    error = {"content": {"application/json": {"schema": {"$ref": _REF.format(model=models.ErrorOut.__name__)}}}}
    answer = _schema(route.response, components) if route.response is not None else {"type": "object"}
    responses: dict[str, Any] = {"200": {"description": "OK", "content": {"application/json": {"schema": answer}}}}
    for code in statuses(route):
        responses[str(code)] = {"description": _ERROR_TEXT.get(code, "Error"), **error}
    operation: dict[str, Any] = {
        "operationId": route.function,
        "summary": route.summary,
        "parameters": _parameters(route, components),
        "responses": responses,
        "security": [{"bearerToken": []}] if route.authenticated else [],
    }
    if route.body is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": _schema(route.body, components)}},
        }
    elif route is REPLICATE_WEBHOOK:
        operation["requestBody"] = {
            "required": True,
            "description": "The prediction or training object, signed as sent",
            "content": {"application/json": {"schema": _WEBHOOK_BODY}},
        }
    return operation


def openapi_document() -> dict[str, Any]:
    components: dict[str, Any] = {}
    _schema(models.ErrorOut, components)
    paths: dict[str, Any] = {}
    for route in ROUTES:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route, components)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "jobsync",
            "version": "1.0.0",
            "description": "Status, cost and live progress of training jobs at cloud providers. A method a path "
            "does not serve is answered 405 with an Allow header; an unknown path 404; both in the error shape.",
        },
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"bearerToken": {"type": "http", "scheme": "bearer"}},
        },
    }
