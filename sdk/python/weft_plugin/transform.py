"""The transform role: rewrite or reject a request before the model sees it,
and filter the response text as it streams out.

Request, message and tool-call objects are the contract's own records
(``request.messages``, ``request.params``, ``request.headers``,
``request.constraint``); change them in place or build new ones.

Example::

    from weft_plugin import export
    from weft_plugin.transform import ResponseFilter, Transform

    class Upper(ResponseFilter):
        def on_chunk(self, text):
            return text.upper()

    @export
    class Shout(Transform):
        name = "shout"

        def response_filter(self, request):
            return Upper()
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Union

from . import Config


class Rejected(Exception):
    """Raised from :meth:`Transform.on_request` to refuse the request with an HTTP status.

    >>> Rejected(400, "no").status
    400
    """

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class Call:
    """A tool call a response filter emits (the contract's ``tool-call``)."""

    id: str
    name: str
    arguments: str


Output = Union[str, Call]


class ResponseFilter:
    """One response's filter. The default passes text through.

    Plain filters override :meth:`on_chunk` and :meth:`on_end` (strings); a
    filter that emits tool calls overrides :meth:`on_chunk_outputs` and
    :meth:`on_end_outputs`, returning strings and :class:`Call` objects.

    >>> ResponseFilter().on_chunk("x")
    'x'
    """

    def on_chunk(self, text: str) -> str:
        return text

    def on_end(self) -> str:
        return ""

    def on_chunk_outputs(self, text: str) -> List[Output]:
        t = self.on_chunk(text)
        return [t] if t else []

    def on_end_outputs(self) -> List[Output]:
        t = self.on_end()
        return [t] if t else []


class Transform:
    """Base class of a transform plugin; keep state on ``self``.

    Class attributes ``name``, ``version`` and ``description`` (or the
    docstring's first line) are its metadata.
    """

    name: str = "transform"
    version: str = "0.1.0"

    def __init__(self, config: Config):
        self.config = config

    def on_request(self, request):
        """Returns the (possibly changed) request, or raises :class:`Rejected`."""
        return request

    def response_filter(self, request) -> ResponseFilter:
        """The filter for one response; ``request`` is as the last transform left it."""
        return ResponseFilter()


def _lower(outputs: List[Output]) -> list:
    from wit_world.exports import transform as wt

    out = []
    for o in outputs:
        if isinstance(o, str):
            if o:
                out.append(wt.Output_Text(o))
        elif isinstance(o, Call):
            out.append(wt.Output_ToolCall(wt.ToolCall(id=o.id, name=o.name, arguments=o.arguments)))
        else:
            raise TypeError(f"a response filter returned {type(o).__name__}, not str or Call")
    return out


def message(role: str, content: str):
    """A plain text chat message record (for transforms that add messages)."""
    from wit_world.exports import transform as wt

    return wt.Message(role=role, content=content, name=None, tool_calls=[], tool_call_id=None)


def param(request, name: str) -> Optional[str]:
    """The JSON text of request parameter ``name``, if present."""
    return next((v for k, v in request.params if k == name), None)


def header(request, name: str) -> Optional[str]:
    """The value of exposed header ``name`` (lower-case), if present."""
    return next((v for k, v in request.headers if k == name), None)
