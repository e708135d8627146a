"""Write Corral plugins in Python.

A plugin is one function from the job's input (decoded JSON, usually a dict)
to its result (anything ``json.dumps`` accepts, usually a dict), registered
with ``@corral.handler``. This module decodes the input, encodes the result,
and turns ``corral.Retryable`` and ``corral.Fatal`` into the job's outcome;
you never see the WIT bindings::

    import corral

    @corral.handler
    def greet(input: dict, job: corral.Job) -> dict:
        if not input.get("name"):
            raise corral.Fatal("name is empty")  # retrying cannot fix bad input
        corral.log.info(f"greeting {input['name']} (attempt {job.attempt})")
        corral.progress(50, "halfway")
        punctuation = corral.config("punctuation") or "!"
        return {"greeting": f"Hello, {input['name']}{punctuation}"}

The handler may also take only the input: ``def greet(input): ...``.

Errors and retries:

- ``raise corral.Retryable(msg)``: retried with backoff while attempts remain.
- ``raise corral.Fatal(msg)``: never retried; the job is dead at once.
- Any other exception is retryable; its traceback goes to the job's log.
- ``MemoryError`` is not caught: the attempt ends as ``memory_exceeded``.
- Input that is not JSON, or a result ``json.dumps`` refuses, is fatal.

A plugin has no files and no environment variables; ``corral.http`` makes
HTTP requests under the plugin's allow-list (docs/http.md). ``print`` goes
to the job's log (bounded), like ``corral.log``.

Build a plugin with componentize-py against Corral's ``wit/`` folder, with
this folder on the path (``just plugins`` does this for ``plugins/python/*``)::

    componentize-py -d wit -w job-handler componentize app -p . -p plugins/python -o app.wasm
"""

import inspect
import json
import sys
import traceback
from dataclasses import dataclass
from typing import Any, Callable, Optional, TypeVar, Union, overload

from componentize_py_types import Err
from wit_world import exports
# `corral_plugin_types`: the world also imports wasi:http's `types`, so
# componentize-py names both by package.
from wit_world.imports import host
from wit_world.imports import corral_plugin_types as types

__all__ = [
    "Fatal",
    "Handler",
    "Job",
    "Retryable",
    "config",
    "handler",
    "log",
    "progress",
]


class Retryable(Exception):
    """Worth trying again: the job is retried with backoff while attempts remain."""


class Fatal(Exception):
    """Never worth trying again: the job goes to the dead-letter state at once."""


@dataclass(frozen=True)
class Job:
    """The job an attempt belongs to."""

    id: str
    """The job's id (a UUID in text form)."""
    tenant: str
    """The tenant that owns the job."""
    plugin: str
    """This plugin's name."""
    attempt: int
    """Which attempt this is, starting at 1."""
    max_attempts: int
    """How many attempts the job may use in all."""
    context: Optional[Any]
    """For a workflow step: ``{"input": <run input>, "steps": {<upstream step>:
    <its result>}}`` (and ``item``, ``index`` for a ``for_each`` element);
    None for a plain job."""

    @property
    def is_last_attempt(self) -> bool:
        """Whether a retryable error now would leave no attempt to retry with."""
        return self.attempt >= self.max_attempts


class _Log:
    """Lines in the job's log (bounded by the plugin's ``log`` limit)."""

    def trace(self, message: object) -> None:
        host.log(host.LogLevel.TRACE, str(message))

    def debug(self, message: object) -> None:
        host.log(host.LogLevel.DEBUG, str(message))

    def info(self, message: object) -> None:
        host.log(host.LogLevel.INFO, str(message))

    def warn(self, message: object) -> None:
        host.log(host.LogLevel.WARN, str(message))

    def error(self, message: object) -> None:
        host.log(host.LogLevel.ERROR, str(message))


log = _Log()
"""``corral.log.info("...")`` and ``trace``, ``debug``, ``warn``, ``error``."""


def progress(percent: int, message: str = "") -> None:
    """Report progress, 0 to 100 (values outside are clamped), with a short message."""
    host.progress(max(0, min(100, int(percent))), str(message))


def config(key: str) -> Optional[str]:
    """Read one of this plugin's settings, set by the operator over the API."""
    return host.config(key)


_registered: Optional[Callable[..., Any]] = None
_takes_job = False

In = TypeVar("In")
"""The handler's input type: what the job's JSON decodes to (``dict``, a
``TypedDict``, ``list``, ``Any``, …). It is not checked at run time."""
Out = TypeVar("Out")
"""The handler's result type: anything ``json.dumps`` accepts."""


@overload
def handler(fn: Callable[[In, Job], Out]) -> Callable[[In, Job], Out]: ...


@overload
def handler(fn: Callable[[In], Out]) -> Callable[[In], Out]: ...


def handler(
    fn: Union[Callable[[In, Job], Out], Callable[[In], Out]],
) -> Union[Callable[[In, Job], Out], Callable[[In], Out]]:
    """Register ``fn(input)`` or ``fn(input, job)`` as the plugin's handler.

    Typed: ``@corral.handler`` keeps the function's own signature, so a
    type checker sees ``def greet(input: GreetInput, job: corral.Job) ->
    Greeting`` as written.

    Use it once per plugin. componentize-py looks for the export class
    ``Handler`` in the app module, so the decorator puts it there: the
    decorator is all a plugin needs.
    """
    global _registered, _takes_job
    if _registered is not None and _registered is not fn:
        raise RuntimeError(
            f"@corral.handler used twice ({_registered.__name__} and {fn.__name__})"
        )
    _registered = fn
    _takes_job = len(inspect.signature(fn).parameters) >= 2
    setattr(sys.modules[fn.__module__], "Handler", Handler)
    return fn


def _fatal(message: str) -> Err:
    return Err(types.JobError_Fatal(message))


class Handler(exports.Handler):
    """The component's export; calls the function ``@corral.handler`` registered."""

    def run(self, job: types.Job) -> str:
        if _registered is None:
            raise _fatal("the plugin registered no handler (use @corral.handler)")
        try:
            value = json.loads(job.input)
        except ValueError as e:
            raise _fatal(f"the job's input is not JSON: {e}") from None
        try:
            context = None if job.context is None else json.loads(job.context)
        except ValueError as e:
            raise _fatal(f"the job's context is not JSON: {e}") from None
        info = Job(
            id=job.id,
            tenant=job.tenant,
            plugin=job.plugin,
            attempt=job.attempt,
            max_attempts=job.max_attempts,
            context=context,
        )
        try:
            result = _registered(value, info) if _takes_job else _registered(value)
        except Fatal as e:
            raise _fatal(str(e)) from None
        except Retryable as e:
            raise Err(types.JobError_Retryable(str(e))) from None
        except MemoryError:
            # Let it end the attempt: the host reports `memory_exceeded`,
            # which is dead at once (retrying with the same limit cannot help).
            raise
        except Exception as e:
            host.log(host.LogLevel.ERROR, traceback.format_exc().rstrip())
            raise Err(types.JobError_Retryable(f"{type(e).__name__}: {e}")) from None
        try:
            # allow_nan=False: NaN and Infinity are not JSON.
            return json.dumps(result, allow_nan=False)
        except (TypeError, ValueError) as e:
            raise _fatal(f"the plugin's result cannot be encoded as JSON: {e}") from None
