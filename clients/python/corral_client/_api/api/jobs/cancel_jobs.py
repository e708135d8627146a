from http import HTTPStatus
from typing import Any

import httpx

from ... import errors
from ...client import AuthenticatedClient, Client
from ...models.bulk_outcome import BulkOutcome
from ...models.bulk_request import BulkRequest
from ...models.error_body import ErrorBody
from ...types import Response


def _get_kwargs(
    *,
    body: BulkRequest,
) -> dict[str, Any]:
    headers: dict[str, Any] = {}

    _kwargs: dict[str, Any] = {
        "method": "post",
        "url": "/v1/jobs/cancel",
    }

    _kwargs["json"] = body.to_dict()

    headers["Content-Type"] = "application/json"

    _kwargs["headers"] = headers
    return _kwargs


def _parse_response(
    *, client: AuthenticatedClient | Client, response: httpx.Response
) -> BulkOutcome | ErrorBody | None:
    if response.status_code == 200:
        response_200 = BulkOutcome.from_dict(response.json())

        return response_200

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
) -> Response[BulkOutcome | ErrorBody]:
    return Response(
        status_code=HTTPStatus(response.status_code),
        content=response.content,
        headers=response.headers,
        parsed=_parse_response(client=client, response=response),
    )


def sync_detailed(
    *,
    client: AuthenticatedClient | Client,
    body: BulkRequest,
) -> Response[BulkOutcome | ErrorBody]:
    """`POST /v1/jobs/cancel`: cancel up to `limit` unfinished jobs that match
    the filter, in one transaction, each as `POST /v1/jobs/{id}/cancel`
    would (a waiting job at once, a running one stopped by its host within a
    second).

    Args:
        body (BulkRequest): A bulk replay or cancel (`POST /v1/jobs/replay`, `POST
            /v1/jobs/cancel`).

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[BulkOutcome | ErrorBody]
    """

    kwargs = _get_kwargs(
        body=body,
    )

    response = client.get_httpx_client().request(
        **kwargs,
    )

    return _build_response(client=client, response=response)


def sync(
    *,
    client: AuthenticatedClient | Client,
    body: BulkRequest,
) -> BulkOutcome | ErrorBody | None:
    """`POST /v1/jobs/cancel`: cancel up to `limit` unfinished jobs that match
    the filter, in one transaction, each as `POST /v1/jobs/{id}/cancel`
    would (a waiting job at once, a running one stopped by its host within a
    second).

    Args:
        body (BulkRequest): A bulk replay or cancel (`POST /v1/jobs/replay`, `POST
            /v1/jobs/cancel`).

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        BulkOutcome | ErrorBody
    """

    return sync_detailed(
        client=client,
        body=body,
    ).parsed


async def asyncio_detailed(
    *,
    client: AuthenticatedClient | Client,
    body: BulkRequest,
) -> Response[BulkOutcome | ErrorBody]:
    """`POST /v1/jobs/cancel`: cancel up to `limit` unfinished jobs that match
    the filter, in one transaction, each as `POST /v1/jobs/{id}/cancel`
    would (a waiting job at once, a running one stopped by its host within a
    second).

    Args:
        body (BulkRequest): A bulk replay or cancel (`POST /v1/jobs/replay`, `POST
            /v1/jobs/cancel`).

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[BulkOutcome | ErrorBody]
    """

    kwargs = _get_kwargs(
        body=body,
    )

    response = await client.get_async_httpx_client().request(**kwargs)

    return _build_response(client=client, response=response)


async def asyncio(
    *,
    client: AuthenticatedClient | Client,
    body: BulkRequest,
) -> BulkOutcome | ErrorBody | None:
    """`POST /v1/jobs/cancel`: cancel up to `limit` unfinished jobs that match
    the filter, in one transaction, each as `POST /v1/jobs/{id}/cancel`
    would (a waiting job at once, a running one stopped by its host within a
    second).

    Args:
        body (BulkRequest): A bulk replay or cancel (`POST /v1/jobs/replay`, `POST
            /v1/jobs/cancel`).

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        BulkOutcome | ErrorBody
    """

    return (
        await asyncio_detailed(
            client=client,
            body=body,
        )
    ).parsed
