from http import HTTPStatus
from typing import Any
from urllib.parse import quote

import httpx

from ... import errors
from ...client import AuthenticatedClient, Client
from ...models.create_run import CreateRun
from ...models.error_body import ErrorBody
from ...models.workflow_run import WorkflowRun
from ...types import UNSET, Response, Unset


def _get_kwargs(
    name: str,
    *,
    body: CreateRun,
    idempotency_key: None | str | Unset = UNSET,
) -> dict[str, Any]:
    headers: dict[str, Any] = {}
    if not isinstance(idempotency_key, Unset):
        headers["Idempotency-Key"] = idempotency_key

    _kwargs: dict[str, Any] = {
        "method": "post",
        "url": "/v1/workflows/{name}/runs".format(
            name=quote(str(name), safe=""),
        ),
    }

    _kwargs["json"] = body.to_dict()

    headers["Content-Type"] = "application/json"

    _kwargs["headers"] = headers
    return _kwargs


def _parse_response(
    *, client: AuthenticatedClient | Client, response: httpx.Response
) -> ErrorBody | WorkflowRun | None:
    if response.status_code == 200:
        response_200 = WorkflowRun.from_dict(response.json())

        return response_200

    if response.status_code == 201:
        response_201 = WorkflowRun.from_dict(response.json())

        return response_201

    if response.status_code == 400:
        response_400 = ErrorBody.from_dict(response.json())

        return response_400

    if response.status_code == 401:
        response_401 = ErrorBody.from_dict(response.json())

        return response_401

    if response.status_code == 403:
        response_403 = ErrorBody.from_dict(response.json())

        return response_403

    if response.status_code == 404:
        response_404 = ErrorBody.from_dict(response.json())

        return response_404

    if response.status_code == 408:
        response_408 = ErrorBody.from_dict(response.json())

        return response_408

    if response.status_code == 422:
        response_422 = ErrorBody.from_dict(response.json())

        return response_422

    if response.status_code == 429:
        response_429 = ErrorBody.from_dict(response.json())

        return response_429

    if response.status_code == 503:
        response_503 = ErrorBody.from_dict(response.json())

        return response_503

    if client.raise_on_unexpected_status:
        raise errors.UnexpectedStatus(response.status_code, response.content)
    else:
        return None


def _build_response(
    *, client: AuthenticatedClient | Client, response: httpx.Response
) -> Response[ErrorBody | WorkflowRun]:
    return Response(
        status_code=HTTPStatus(response.status_code),
        content=response.content,
        headers=response.headers,
        parsed=_parse_response(client=client, response=response),
    )


def sync_detailed(
    name: str,
    *,
    client: AuthenticatedClient | Client,
    body: CreateRun,
    idempotency_key: None | str | Unset = UNSET,
) -> Response[ErrorBody | WorkflowRun]:
    """`POST /v1/workflows/{name}/runs`: 201 with the run; the steps without
    dependencies have their jobs already. Counts as one job against the
    tenant's enqueue quotas. With an `Idempotency-Key` seen before, 200 with
    the first run.

    Args:
        name (str):
        idempotency_key (None | str | Unset):
        body (CreateRun): A run to start.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ErrorBody | WorkflowRun]
    """

    kwargs = _get_kwargs(
        name=name,
        body=body,
        idempotency_key=idempotency_key,
    )

    response = client.get_httpx_client().request(
        **kwargs,
    )

    return _build_response(client=client, response=response)


def sync(
    name: str,
    *,
    client: AuthenticatedClient | Client,
    body: CreateRun,
    idempotency_key: None | str | Unset = UNSET,
) -> ErrorBody | WorkflowRun | None:
    """`POST /v1/workflows/{name}/runs`: 201 with the run; the steps without
    dependencies have their jobs already. Counts as one job against the
    tenant's enqueue quotas. With an `Idempotency-Key` seen before, 200 with
    the first run.

    Args:
        name (str):
        idempotency_key (None | str | Unset):
        body (CreateRun): A run to start.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ErrorBody | WorkflowRun
    """

    return sync_detailed(
        name=name,
        client=client,
        body=body,
        idempotency_key=idempotency_key,
    ).parsed


async def asyncio_detailed(
    name: str,
    *,
    client: AuthenticatedClient | Client,
    body: CreateRun,
    idempotency_key: None | str | Unset = UNSET,
) -> Response[ErrorBody | WorkflowRun]:
    """`POST /v1/workflows/{name}/runs`: 201 with the run; the steps without
    dependencies have their jobs already. Counts as one job against the
    tenant's enqueue quotas. With an `Idempotency-Key` seen before, 200 with
    the first run.

    Args:
        name (str):
        idempotency_key (None | str | Unset):
        body (CreateRun): A run to start.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ErrorBody | WorkflowRun]
    """

    kwargs = _get_kwargs(
        name=name,
        body=body,
        idempotency_key=idempotency_key,
    )

    response = await client.get_async_httpx_client().request(**kwargs)

    return _build_response(client=client, response=response)


async def asyncio(
    name: str,
    *,
    client: AuthenticatedClient | Client,
    body: CreateRun,
    idempotency_key: None | str | Unset = UNSET,
) -> ErrorBody | WorkflowRun | None:
    """`POST /v1/workflows/{name}/runs`: 201 with the run; the steps without
    dependencies have their jobs already. Counts as one job against the
    tenant's enqueue quotas. With an `Idempotency-Key` seen before, 200 with
    the first run.

    Args:
        name (str):
        idempotency_key (None | str | Unset):
        body (CreateRun): A run to start.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ErrorBody | WorkflowRun
    """

    return (
        await asyncio_detailed(
            name=name,
            client=client,
            body=body,
            idempotency_key=idempotency_key,
        )
    ).parsed
