"""A small blocking HTTP client over ``wasi:http/outgoing-handler``.

Every request goes through the host, which allows it only toward the
destinations the plugin's owner put on its allow-list, never to the host's
own network, within the attempt's limits (Corral's docs/http.md). A refused
request raises ``corral.http.HttpError`` whose ``code`` names the
``wasi:http`` error (``HttpRequestDenied``, ``DestinationIpProhibited``,
``HttpResponseBodySize``, …). Redirects are not followed::

    import corral
    from corral import http

    @corral.handler
    def sync(input: dict) -> dict:
        items = http.get("https://api.example.com/items").json()
        posted = http.post(
            "https://hooks.example.com/notify",
            json=items,
            # Filled in by the host, only toward destinations allowed to receive it.
            headers={"authorization": "Bearer {{secret.HOOK_TOKEN}}"},
        )
        return {"status": posted.status}

An ``HttpError`` the handler does not catch makes the attempt retryable,
like any other exception.
"""

import json as _json
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union
from urllib.parse import urlsplit

from componentize_py_types import Err, Ok
from wit_world.imports import outgoing_handler, streams
from wit_world.imports import wasi_http_types as wasi

__all__ = ["HttpError", "Response", "delete", "get", "post", "put", "request"]

# Bytes written to the host per call (the stream's guaranteed minimum).
_WRITE_CHUNK = 4096
# Bytes asked for per read.
_READ_CHUNK = 64 * 1024

Body = Union[bytes, str, None]


class HttpError(Exception):
    """A request that got no response, or whose body could not be sent or read.

    ``code`` is the ``wasi:http`` error code's name (``HttpRequestDenied``,
    ``ConnectionTimeout``, …) when the host gave one, else ``"Other"``.
    """

    def __init__(self, code: str, detail: str = "") -> None:
        self.code = code
        self.detail = detail
        super().__init__(f"{code}: {detail}" if detail else code)


@dataclass
class Response:
    """A whole response."""

    status: int
    headers: List[Tuple[str, bytes]] = field(default_factory=list)
    """Names in lower case, in the order received."""
    body: bytes = b""

    @property
    def ok(self) -> bool:
        """2xx."""
        return 200 <= self.status < 300

    def header(self, name: str) -> Optional[str]:
        """The first value of a header, as text."""
        name = name.lower()
        for key, value in self.headers:
            if key == name:
                return value.decode("utf-8", "replace")
        return None

    def text(self) -> str:
        """The body as text (invalid UTF-8 replaced)."""
        return self.body.decode("utf-8", "replace")

    def json(self) -> Any:
        """The body as JSON."""
        try:
            return _json.loads(self.body)
        except ValueError as e:
            raise HttpError("Other", f"the response is not JSON: {e}") from None


def _code(error: Any) -> HttpError:
    """An ``ErrorCode`` variant as an ``HttpError`` named like the Rust SDK's."""
    name = type(error).__name__.removeprefix("ErrorCode_")
    value = getattr(error, "value", None)
    return HttpError(name, "" if value is None else repr(value))


def _stream_error(e: Err, what: str) -> HttpError:
    if isinstance(e.value, streams.StreamError_Closed):
        return HttpError("Other", f"{what}: the stream closed")
    code = wasi.http_error_code(e.value.value)
    if code is not None:
        error = _code(code)
        return HttpError(error.code, f"{what}: {error.detail}".rstrip(": "))
    # The host's own errors (a body over its limit): their first line says what happened.
    text = e.value.value.to_debug_string().splitlines()
    return HttpError("Other", f"{what}: {text[0] if text else ''}")


_METHODS = {
    "GET": wasi.Method_Get,
    "HEAD": wasi.Method_Head,
    "POST": wasi.Method_Post,
    "PUT": wasi.Method_Put,
    "DELETE": wasi.Method_Delete,
    "PATCH": wasi.Method_Patch,
    "OPTIONS": wasi.Method_Options,
}


def request(
    method: str,
    url: str,
    *,
    headers: Optional[Mapping[str, str]] = None,
    body: Body = None,
    json: Any = None,
) -> Response:
    """Send a request and wait for the whole response.

    ``json=`` sends a value as JSON with ``content-type: application/json``.
    A header value may hold ``{{secret.NAME}}``: the host puts the tenant's
    secret there when the allow-list lets this destination receive it (and
    refuses the request otherwise); the plugin never sees it.
    """
    parts = urlsplit(url)
    if parts.scheme == "https":
        scheme: wasi.Scheme = wasi.Scheme_Https()
    elif parts.scheme == "http":
        scheme = wasi.Scheme_Http()
    else:
        raise HttpError("HttpRequestUriInvalid", f"`{url}` does not start with https:// or http://")
    if not parts.netloc:
        raise HttpError("HttpRequestUriInvalid", f"`{url}` has no host")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")

    entries: Dict[str, str] = {k.lower(): str(v) for k, v in (headers or {}).items()}
    if json is not None:
        body = _json.dumps(json)
        entries.setdefault("content-type", "application/json")
    data = body.encode() if isinstance(body, str) else (body or b"")

    try:
        fields = wasi.Fields.from_list([(k, v.encode()) for k, v in entries.items()])
    except Err as e:
        raise HttpError("HttpRequestHeaderSectionSize", f"a header is not valid: {e.value}") from None
    outgoing = wasi.OutgoingRequest(fields)
    verb = method.upper()
    try:
        outgoing.set_method(_METHODS[verb]() if verb in _METHODS else wasi.Method_Other(verb))
        outgoing.set_scheme(scheme)
        outgoing.set_authority(parts.netloc)
        outgoing.set_path_with_query(path)
    except Err:
        raise HttpError("HttpRequestUriInvalid", f"`{url}` is not a valid request") from None
    outgoing_body = outgoing.body()
    try:
        future = outgoing_handler.handle(outgoing, None)
    except Err as e:
        raise _code(e.value) from None

    # A request the host refused closes its body at once: then the
    # response's error says why, not the write's.
    sent: Optional[HttpError] = None
    try:
        with outgoing_body.write() as stream:
            for start in range(0, len(data), _WRITE_CHUNK):
                stream.blocking_write_and_flush(data[start : start + _WRITE_CHUNK])
        wasi.OutgoingBody.finish(outgoing_body, None)
    except Err as e:
        sent = (
            _code(e.value)
            if not isinstance(e.value, (streams.StreamError_Closed, streams.StreamError_LastOperationFailed))
            else _stream_error(e, "sending the body")
        )

    with future:
        with future.subscribe() as ready:
            ready.block()
        outcome = future.get()
    if not isinstance(outcome, Ok):
        raise HttpError("Other", "no response")
    if not isinstance(outcome.value, Ok):
        raise _code(outcome.value.value)
    if sent is not None:
        raise sent
    # The response outlives its body: both are dropped (closed) on leaving.
    with outcome.value.value as incoming:
        status = incoming.status()
        with incoming.headers() as fields:
            received = fields.entries()
        body_in = incoming.consume()
        chunks = []
        with body_in.stream() as stream:
            while True:
                try:
                    chunks.append(stream.blocking_read(_READ_CHUNK))
                except Err as e:
                    if isinstance(e.value, streams.StreamError_Closed):
                        break
                    raise _stream_error(e, "reading the body") from None
        with wasi.IncomingBody.finish(body_in):
            pass
    return Response(status=status, headers=received, body=b"".join(chunks))


def get(url: str, *, headers: Optional[Mapping[str, str]] = None) -> Response:
    """``GET url``."""
    return request("GET", url, headers=headers)


def post(url: str, *, headers: Optional[Mapping[str, str]] = None, body: Body = None, json: Any = None) -> Response:
    """``POST url`` with a body (bytes or text) or ``json=``."""
    return request("POST", url, headers=headers, body=body, json=json)


def put(url: str, *, headers: Optional[Mapping[str, str]] = None, body: Body = None, json: Any = None) -> Response:
    """``PUT url`` with a body (bytes or text) or ``json=``."""
    return request("PUT", url, headers=headers, body=body, json=json)


def delete(url: str, *, headers: Optional[Mapping[str, str]] = None) -> Response:
    """``DELETE url``."""
    return request("DELETE", url, headers=headers)
