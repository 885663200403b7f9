"""The one place that creates the logger and the metrics every module uses.

No Tracer: Powertools' Tracer needs aws-xray-sdk, which brings its own botocore
into the layer (30 MB, shadowing the runtime's boto3) and costs a few hundred
milliseconds of cold start. The functions worth tracing have `Tracing: Active`
in template.yaml, so Lambda records their invocations in X-Ray without it.
"""

from __future__ import annotations

import os

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME", "jobsync")

logger = Logger(service=SERVICE)
metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "jobsync"), service=SERVICE)


def count(name: str, value: float = 1) -> None:
    metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)


def milliseconds(name: str, value: float) -> None:
    metrics.add_metric(name=name, unit=MetricUnit.Milliseconds, value=value)
