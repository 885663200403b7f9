"""template.yaml as data: what the local stack and the tests need to know about it.

The local stack builds its gateway routes, tables, schedule and stream pump
from here, so running locally cannot drift from what is deployed. Values are
returned as CloudFormation wrote them (`{"Ref": ...}`, `{"Fn::Sub": ...}`);
`resolve` turns them into plain values once the caller knows its parameters
and what each resource stands for locally.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

DEFAULT_PATH = Path(__file__).resolve().parent.parent / "template.yaml"

SERVERLESS_FUNCTION = "AWS::Serverless::Function"
DYNAMODB_TABLE = "AWS::DynamoDB::Table"
_SAM_DEFAULT_TIMEOUT = 3

PSEUDO_PARAMETERS: dict[str, str] = {
    "AWS::AccountId": "123456789012",
    "AWS::Partition": "aws",
    "AWS::Region": "us-east-1",
    "AWS::StackName": "jobsync",
    "AWS::URLSuffix": "amazonaws.com",
}


class TemplateError(ValueError):
    """The template does not have the shape this module relies on."""


class Unresolvable(TemplateError):
    """A value depends on something the caller did not supply (or CloudFormation alone knows)."""


# --------------------------------------------------------------------- loading


# libyaml's SafeLoader when PyYAML was built with it: the same documents, read in a fifth of the CPU time
# (0.03 s, not 0.15 s, for template.yaml, which every start of the local stack reads).
try:
    from yaml import CSafeLoader as _SafeLoader
except ImportError:  # PyYAML without libyaml
    from yaml import SafeLoader as _SafeLoader  # type: ignore[assignment]


class _CloudFormationLoader(_SafeLoader):
    """SafeLoader plus CloudFormation's short tags (`!Ref`, `!Sub`, `!GetAtt`, ...)."""


def _short_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if suffix == "Ref" or suffix == "Condition":
        return {suffix: value}
    if suffix == "GetAtt" and isinstance(value, str):
        # `!GetAtt Resource.Attribute` is the short form of ["Resource", "Attribute"].
        resource, _, attribute = value.partition(".")
        value = [resource, attribute]
    return {f"Fn::{suffix}": value}


_CloudFormationLoader.add_multi_constructor("!", _short_tag)


def load_template(path: str | Path = DEFAULT_PATH) -> dict[str, Any]:
    with open(path, encoding="utf-8") as handle:
        document = yaml.load(handle, Loader=_CloudFormationLoader)  # noqa: S506 - a SafeLoader subclass
    if not isinstance(document, dict) or not isinstance(document.get("Resources"), dict):
        raise TemplateError(f"{path} has no Resources")
    return document


# ------------------------------------------------------------------ data types


@dataclass(frozen=True)
class TableSpec:
    logical_id: str
    create_kwargs: dict[str, Any]  # for boto3 `create_table`, without TableName
    ttl_attribute: str | None


@dataclass(frozen=True)
class FunctionSpec:
    logical_id: str
    code_uri: str
    handler: str
    environment: dict[str, Any]  # Globals merged with the function's own; raw CloudFormation values
    timeout: int
    layers: tuple[str, ...] = ()  # ContentUri of each layer of this template the function uses
    function_name: Any = None  # raw FunctionName (e.g. !Sub ${AWS::StackName}-x); None when CloudFormation names it
    reserved_concurrency: Any = None  # raw ReservedConcurrentExecutions
    async_retries: int = 2  # EventInvokeConfig.MaximumRetryAttempts (Lambda's default: 2)

    @property
    def folder(self) -> str:
        """The function's folder name under functions/."""
        return Path(self.code_uri).name


@dataclass(frozen=True)
class HttpRoute:
    method: str
    path: str
    function: FunctionSpec
    authenticated: bool
    authorizer: str | None  # the authorizer's name in the HttpApi, None for an open route

    @property
    def function_id(self) -> str:
        return self.function.logical_id

    @property
    def code_uri(self) -> str:
        return self.function.code_uri

    @property
    def handler(self) -> str:
        return self.function.handler

    @property
    def key(self) -> str:
        return f"{self.method} {self.path}"


@dataclass(frozen=True)
class Schedule:
    function: FunctionSpec
    expression: Any  # raw: e.g. {"Fn::FindInMap": [...]}; see `resolve` and `rate_seconds`
    input: Any  # the event the function receives (Input parsed from JSON), None when not set


@dataclass(frozen=True)
class StreamConsumer:
    function: FunctionSpec
    table_id: str
    batch_size: int
    starting_position: str
    maximum_retry_attempts: int | None
    bisect_on_error: bool
    # FilterCriteria's patterns (parsed): a record reaches the function when it matches one; none = all do.
    filter_patterns: tuple[dict[str, Any], ...] = ()
    # FunctionResponseTypes has ReportBatchItemFailures: the function names the records to retry.
    reports_item_failures: bool = False


# -------------------------------------------------------------------- helpers


def _resources(template: Mapping[str, Any], type_name: str) -> dict[str, dict[str, Any]]:
    return {
        logical_id: resource
        for logical_id, resource in template["Resources"].items()
        if isinstance(resource, dict) and resource.get("Type") == type_name
    }


def _properties(resource: Mapping[str, Any]) -> dict[str, Any]:
    return resource.get("Properties") or {}


_SUB_NAME = re.compile(r"\$\{([^!}][^}]*)\}")


def referenced_ids(value: Any) -> list[str]:
    """Logical ids (or parameter names) `value` refers to through Ref, GetAtt or Sub, in order."""
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, list):
            for item in node:
                walk(item)
        elif isinstance(node, dict):
            if len(node) == 1:
                ((key, inner),) = node.items()
                if key == "Ref" and isinstance(inner, str):
                    found.append(inner)
                    return
                if key == "Fn::GetAtt":
                    target = inner[0] if isinstance(inner, list) else str(inner).partition(".")[0]
                    found.append(target)
                    return
                if key == "Fn::Sub":
                    text, variables = (inner[0], inner[1]) if isinstance(inner, list) else (inner, {})
                    for name in _SUB_NAME.findall(text):
                        if name not in variables:
                            found.append(name.partition(".")[0])
                    walk(list(variables.values()))
                    return
            for item in node.values():
                walk(item)

    walk(value)
    return found


def _referenced_resource(template: Mapping[str, Any], value: Any, type_name: str, where: str) -> str:
    for logical_id in referenced_ids(value):
        resource = template["Resources"].get(logical_id)
        if isinstance(resource, dict) and resource.get("Type") == type_name:
            return logical_id
    raise TemplateError(f"{where}: no {type_name} referenced in {value!r}")


def _globals(template: Mapping[str, Any]) -> dict[str, Any]:
    return (template.get("Globals") or {}).get("Function") or {}


def function_spec(template: Mapping[str, Any], logical_id: str) -> FunctionSpec:
    resource = template["Resources"].get(logical_id)
    if not isinstance(resource, dict) or resource.get("Type") != SERVERLESS_FUNCTION:
        raise TemplateError(f"{logical_id} is not an {SERVERLESS_FUNCTION}")
    defaults, own = _globals(template), _properties(resource)
    environment = {
        **((defaults.get("Environment") or {}).get("Variables") or {}),
        **((own.get("Environment") or {}).get("Variables") or {}),
    }
    code_uri = own.get("CodeUri", defaults.get("CodeUri"))
    handler = own.get("Handler", defaults.get("Handler"))
    if not isinstance(code_uri, str) or not isinstance(handler, str):
        raise TemplateError(f"{logical_id} needs a local CodeUri and a Handler")
    layers: list[str] = []
    # SAM appends a function's own Layers to the Globals ones.
    for layer in [*(defaults.get("Layers") or []), *(own.get("Layers") or [])]:
        for layer_id in referenced_ids(layer):
            layer_resource = template["Resources"].get(layer_id) or {}
            content_uri = _properties(layer_resource).get("ContentUri")
            if isinstance(content_uri, str):
                layers.append(content_uri)
    return FunctionSpec(
        logical_id=logical_id,
        code_uri=code_uri,
        handler=handler,
        environment=environment,
        timeout=int(own.get("Timeout", defaults.get("Timeout", _SAM_DEFAULT_TIMEOUT))),
        layers=tuple(layers),
        function_name=own.get("FunctionName"),
        reserved_concurrency=own.get("ReservedConcurrentExecutions"),
        async_retries=int((own.get("EventInvokeConfig") or {}).get("MaximumRetryAttempts", 2)),
    )


def functions(template: Mapping[str, Any]) -> dict[str, FunctionSpec]:
    """Every AWS::Serverless::Function, by logical id."""
    return {logical_id: function_spec(template, logical_id) for logical_id in _resources(template, SERVERLESS_FUNCTION)}


def _events(template: Mapping[str, Any], *event_types: str) -> list[tuple[str, dict[str, Any]]]:
    found = []
    for logical_id, resource in _resources(template, SERVERLESS_FUNCTION).items():
        for event in (_properties(resource).get("Events") or {}).values():
            if event.get("Type") in event_types:
                found.append((logical_id, event.get("Properties") or {}))
    return found


def parameters(template: Mapping[str, Any]) -> dict[str, Any]:
    """Parameter name -> its Default (None when it has none)."""
    return {name: (spec or {}).get("Default") for name, spec in (template.get("Parameters") or {}).items()}


# ---------------------------------------------------------------------- tables


def table_specs(template: Mapping[str, Any]) -> dict[str, TableSpec]:
    specs: dict[str, TableSpec] = {}
    for logical_id, resource in _resources(template, DYNAMODB_TABLE).items():
        props = _properties(resource)
        kwargs: dict[str, Any] = {
            "KeySchema": props["KeySchema"],
            "AttributeDefinitions": props["AttributeDefinitions"],
            "BillingMode": props.get("BillingMode", "PROVISIONED"),
        }
        for key in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes", "ProvisionedThroughput"):
            if props.get(key):
                kwargs[key] = props[key]
        stream = props.get("StreamSpecification")
        if stream:
            kwargs["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": stream["StreamViewType"]}
        ttl = props.get("TimeToLiveSpecification") or {}
        specs[logical_id] = TableSpec(
            logical_id=logical_id,
            create_kwargs=kwargs,
            ttl_attribute=ttl.get("AttributeName") if ttl.get("Enabled", False) else None,
        )
    return specs


def create_tables(dynamodb_client: Any, template: Mapping[str, Any], name_for: Callable[[str], str]) -> dict[str, str]:
    """Create every table of the template (and its TTL); logical id -> table name.

    Idempotent: a table that already exists (a local stack restarted on its
    saved state) is kept as it is, and its TTL is only switched on when off.
    """
    names: dict[str, str] = {}
    for logical_id, spec in table_specs(template).items():
        name = name_for(logical_id)
        try:
            created = dynamodb_client.create_table(TableName=name, **spec.create_kwargs)["TableDescription"]
        except dynamodb_client.exceptions.ResourceInUseException:
            created = None
        # Two requests a table fewer at each start of the local stack, whose moto answers ACTIVE at once and
        # creates a table with its TTL off: the waiter only for a table not yet ACTIVE, the TTL read only for
        # a table that existed.
        if created is None or created.get("TableStatus") != "ACTIVE":
            dynamodb_client.get_waiter("table_exists").wait(
                TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 60}
            )
        if spec.ttl_attribute:
            current = (
                {}
                if created is not None
                else dynamodb_client.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
            )
            if current.get("TimeToLiveStatus") not in ("ENABLED", "ENABLING"):
                dynamodb_client.update_time_to_live(
                    TableName=name,
                    TimeToLiveSpecification={"Enabled": True, "AttributeName": spec.ttl_attribute},
                )
        names[logical_id] = name
    return names


# ------------------------------------------------------------------- HTTP API


def _http_apis(template: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return _resources(template, "AWS::Serverless::HttpApi")


def _default_authorizer(template: Mapping[str, Any], api_id: str | None) -> str | None:
    apis = _http_apis(template)
    api = apis.get(api_id) if api_id else (next(iter(apis.values())) if len(apis) == 1 else None)
    auth = _properties(api or {}).get("Auth") or {}
    return auth.get("DefaultAuthorizer")


def http_routes(template: Mapping[str, Any]) -> list[HttpRoute]:
    routes = []
    for function_id, props in _events(template, "HttpApi"):
        api_ids = referenced_ids(props.get("ApiId"))
        chosen = (props.get("Auth") or {}).get("Authorizer") or _default_authorizer(
            template, api_ids[0] if api_ids else None
        )
        authorizer_name = None if chosen in (None, "NONE") else chosen
        routes.append(
            HttpRoute(
                method=str(props.get("Method", "ANY")).upper(),
                path=props.get("Path", "$default"),
                function=function_spec(template, function_id),
                authenticated=authorizer_name is not None,
                authorizer=authorizer_name,
            )
        )
    return routes


def authorizer(template: Mapping[str, Any]) -> FunctionSpec | None:
    """The function behind the HTTP API's default authorizer; None when the API has none.

    jobsync's own template has none (each function checks the token itself), so every route is
    invoked directly, as API Gateway does.
    """
    for api_id, api in _http_apis(template).items():
        auth = _properties(api).get("Auth") or {}
        name = auth.get("DefaultAuthorizer")
        if not name:
            continue
        config = (auth.get("Authorizers") or {}).get(name) or {}
        function_id = _referenced_resource(template, config.get("FunctionArn"), SERVERLESS_FUNCTION, f"{api_id}.{name}")
        return function_spec(template, function_id)
    return None


# -------------------------------------------------------------- WebSocket API


def websocket_routes(template: Mapping[str, Any]) -> dict[str, FunctionSpec]:
    """Route key ($connect, $disconnect, $default, ...) -> the function its integration invokes."""
    websocket_apis = {
        logical_id
        for logical_id, api in _resources(template, "AWS::ApiGatewayV2::Api").items()
        if _properties(api).get("ProtocolType") == "WEBSOCKET"
    }
    routes: dict[str, FunctionSpec] = {}
    for route_id, route in _resources(template, "AWS::ApiGatewayV2::Route").items():
        props = _properties(route)
        if not websocket_apis.intersection(referenced_ids(props.get("ApiId"))):
            continue
        integration_id = _referenced_resource(
            template, props.get("Target"), "AWS::ApiGatewayV2::Integration", f"{route_id}.Target"
        )
        integration = _properties(template["Resources"][integration_id])
        function_id = _referenced_resource(
            template, integration.get("IntegrationUri"), SERVERLESS_FUNCTION, f"{integration_id}.IntegrationUri"
        )
        routes[props["RouteKey"]] = function_spec(template, function_id)
    return routes


# --------------------------------------------------------- schedule and stream


def websocket_stage(template: Mapping[str, Any]) -> str:
    """The WebSocket API's stage name (its URL path, locally)."""
    (stage,) = [
        _properties(resource)["StageName"] for resource in _resources(template, "AWS::ApiGatewayV2::Stage").values()
    ]
    return stage


def scheduled_functions(template: Mapping[str, Any]) -> list[Schedule]:
    schedules = []
    for function_id, props in _events(template, "Schedule", "ScheduleV2"):
        raw_input = props.get("Input")
        schedules.append(
            Schedule(
                function=function_spec(template, function_id),
                expression=props.get("ScheduleExpression") or props.get("Schedule"),
                input=json.loads(raw_input) if isinstance(raw_input, str) else raw_input,
            )
        )
    return schedules


def stream_consumers(template: Mapping[str, Any]) -> list[StreamConsumer]:
    consumers = []
    for function_id, props in _events(template, "DynamoDB"):
        table_id = _referenced_resource(template, props.get("Stream"), DYNAMODB_TABLE, f"{function_id} stream")
        retries = props.get("MaximumRetryAttempts")
        consumers.append(
            StreamConsumer(
                function=function_spec(template, function_id),
                table_id=table_id,
                batch_size=int(props.get("BatchSize", 100)),
                starting_position=props.get("StartingPosition", "LATEST"),
                maximum_retry_attempts=None if retries is None else int(retries),
                bisect_on_error=bool(props.get("BisectBatchOnFunctionError", False)),
                filter_patterns=tuple(
                    json.loads(entry["Pattern"]) for entry in (props.get("FilterCriteria") or {}).get("Filters", [])
                ),
                reports_item_failures="ReportBatchItemFailures" in (props.get("FunctionResponseTypes") or []),
            )
        )
    return consumers


_RATE = re.compile(r"^rate\(\s*(\d+)\s+(minute|minutes|hour|hours|day|days)\s*\)$")
_UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86_400}


def rate_seconds(expression: str) -> int:
    """Seconds between two firings of a `rate(...)` schedule expression."""
    match = _RATE.match(expression.strip())
    if not match:
        raise TemplateError(f"not a rate() expression: {expression!r}")
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2).rstrip("s")]


# ------------------------------------------------------------------ resolving


def resolve(
    value: Any,
    template: Mapping[str, Any],
    *,
    parameter_values: Mapping[str, Any] | None = None,
    refs: Mapping[str, Any] | None = None,
    pseudo: Mapping[str, str] | None = None,
) -> Any:
    """`value` with its intrinsic functions evaluated.

    Parameters take `parameter_values` over their defaults. `refs` says what a
    resource stands for: `refs["JobsTable"]` for `!Ref JobsTable`,
    `refs["JobsTable.StreamArn"]` for `!GetAtt JobsTable.StreamArn`.
    Anything else raises Unresolvable.
    """
    params = parameters(template)
    params.update(parameter_values or {})
    pseudo_values = {**PSEUDO_PARAMETERS, **(pseudo or {})}
    resources = dict(refs or {})
    conditions = template.get("Conditions") or {}

    def ref(name: str) -> Any:
        if name in params:
            if params[name] is None:
                raise Unresolvable(f"parameter {name} has no default and no value")
            given = params[name]
            # CloudFormation hands every parameter over as a string.
            return ("true" if given else "false") if isinstance(given, bool) else str(given)
        if name in pseudo_values:
            return pseudo_values[name]
        if name in resources:
            return resources[name]
        raise Unresolvable(f"nothing given for Ref {name}")

    def attribute(resource: str, name: str) -> Any:
        key = f"{resource}.{name}"
        if key not in resources:
            raise Unresolvable(f"nothing given for GetAtt {key}")
        return resources[key]

    def sub(text: str, variables: Mapping[str, Any]) -> str:
        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in variables:
                return str(evaluate(variables[name]))
            if "." in name and not name.startswith("AWS::"):
                return str(attribute(*name.split(".", 1)))
            return str(ref(name))

        return re.sub(r"\$\{([^}]+)\}", replace, text)

    def condition(name: str) -> bool:
        if name not in conditions:
            raise TemplateError(f"unknown condition {name}")
        return bool(evaluate(conditions[name]))

    def evaluate(node: Any) -> Any:
        if isinstance(node, list):
            return [evaluate(item) for item in node]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            ((key, arg),) = node.items()
            if key == "Ref":
                return ref(arg)
            if key == "Condition":
                return condition(arg)
            if key == "Fn::GetAtt":
                resource, name = arg if isinstance(arg, list) else str(arg).split(".", 1)
                return attribute(resource, name)
            if key == "Fn::Sub":
                text, variables = (arg[0], arg[1]) if isinstance(arg, list) else (arg, {})
                return sub(text, variables)
            if key == "Fn::If":
                name, if_true, if_false = arg
                return evaluate(if_true if condition(name) else if_false)
            if key == "Fn::Equals":
                left, right = (evaluate(item) for item in arg)
                return str(left) == str(right)
            if key == "Fn::Not":
                return not evaluate(arg[0])
            if key == "Fn::And":
                return all(evaluate(item) for item in arg)
            if key == "Fn::Or":
                return any(evaluate(item) for item in arg)
            if key == "Fn::FindInMap":
                mapping, first, second = (str(evaluate(item)) for item in arg)
                try:
                    return template["Mappings"][mapping][first][second]
                except KeyError as exc:
                    raise Unresolvable(f"FindInMap {mapping}/{first}/{second}: no such entry") from exc
            if key == "Fn::Join":
                delimiter, items = arg
                return str(delimiter).join(str(item) for item in evaluate(items))
            if key == "Fn::Select":
                index, items = arg
                return evaluate(items)[int(evaluate(index))]
            if key == "Fn::Split":
                delimiter, text = arg
                return str(evaluate(text)).split(delimiter)
            if key.startswith("Fn::"):
                raise Unresolvable(f"{key} cannot be evaluated locally")
        return {key: evaluate(item) for key, item in node.items()}

    return evaluate(value)
