"""The OpenAPI document, built from the same route table the handlers use."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from jobsync.api import models
from jobsync.api.routes import ROUTES, Route

_ERROR_TEXT = {400: "Bad input", 401: "Missing or invalid token", 404: "Not found", 502: "Provider failed"}


def _schema(model: type[BaseModel], components: dict[str, Any]) -> dict[str, Any]:
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, definition in schema.pop("$defs", {}).items():
        components[name] = definition
    components[model.__name__] = schema
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _parameters(route: Route) -> list[dict[str, Any]]:
    parameters = []
    for model, where in ((route.path_params, "path"), (route.query, "query")):
        if model is None:
            continue
        schema = model.model_json_schema()
        for name, prop in schema.get("properties", {}).items():
            parameters.append({"name": name, "in": where, "required": where == "path", "schema": prop})
    return parameters


def _operation(route: Route, components: dict[str, Any]) -> dict[str, Any]:
    error = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorOut"}}}}
    responses: dict[str, Any] = {"200": {"description": "OK"}}
    if route.response is not None:
        responses["200"]["content"] = {"application/json": {"schema": _schema(route.response, components)}}
    codes = set(route.errors) | ({401} if route.authenticated else set())
    for code in sorted(codes):
        responses[str(code)] = {"description": _ERROR_TEXT.get(code, "Error"), **error}
    operation: dict[str, Any] = {
        "operationId": route.function,
        "summary": route.summary,
        "parameters": _parameters(route),
        "responses": responses,
        "security": [{"bearerToken": []}] if route.authenticated else [],
    }
    if route.body is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": _schema(route.body, components)}},
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
            "description": "Status, cost and live progress of training jobs at cloud providers.",
        },
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"bearerToken": {"type": "http", "scheme": "bearer"}},
        },
    }
