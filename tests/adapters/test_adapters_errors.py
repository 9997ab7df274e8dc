"""botocore errors -> typed errors: the translation table."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError
from sparkscale.adapters.aws_errors import translate
from sparkscale.errors import ClusterGone, GroupBusy, InvalidRequest, Throttled, TransientAwsError


def _err(code: str, message: str = "", status: int = 400) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": status}}, "Op"
    )


@pytest.mark.parametrize(
    ("code", "message", "status", "expected"),
    [
        ("ThrottlingException", "Rate exceeded", 400, Throttled),
        ("Throttling", "", 400, Throttled),
        ("RequestLimitExceeded", "", 503, Throttled),
        ("SomethingNew", "slow down", 429, Throttled),
        ("InternalServerError", "", 400, TransientAwsError),  # EMR's model: InternalServerError is HTTP 400
        ("InternalServerException", "", 500, TransientAwsError),
        ("ServiceUnavailable", "", 503, TransientAwsError),
        ("InvalidRequestException", "Cluster id 'j-1' is not valid.", 400, ClusterGone),
        ("ValidationException", "Cluster j-1 is in state TERMINATING", 400, ClusterGone),
        ("NoSuchCluster", "", 400, ClusterGone),
        ("ValidationException", "Instance group id 'ig-1' is not valid.", 400, InvalidRequest),
        ("ValidationException", "Instance group ig-1 is in RESIZING state", 400, GroupBusy),
        ("InvalidRequestException", "A resize of this group is already in progress", 400, GroupBusy),
        ("ValidationException", "1 validation error detected: InstanceCount", 400, InvalidRequest),
        (
            "AccessDeniedException",
            "not authorized to perform elasticmapreduce:ModifyInstanceGroups",
            400,
            InvalidRequest,
        ),
    ],
)
def test_client_errors(code: str, message: str, status: int, expected: type[Exception]) -> None:
    err = translate(_err(code, message, status), "ModifyInstanceGroups")
    assert type(err) is expected
    assert err.operation == "ModifyInstanceGroups"
    assert str(err).startswith("ModifyInstanceGroups: ")


@pytest.mark.parametrize(
    "exc",
    [
        EndpointConnectionError(endpoint_url="https://elasticmapreduce.us-east-1.amazonaws.com"),
        ReadTimeoutError(endpoint_url="https://monitoring.us-east-1.amazonaws.com"),
    ],
)
def test_network_errors_are_transient(exc: Exception) -> None:
    assert type(translate(exc, "GetMetricData")) is TransientAwsError
