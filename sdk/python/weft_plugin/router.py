"""The router role: pick which backend serves a request, or reject it.

Example::

    from weft_plugin import export
    from weft_plugin.router import Router

    @export
    class FirstHealthy(Router):
        name = "first-healthy"

        def route(self, request, candidates):
            for c in candidates:
                if c.healthy:
                    return c.id
            return self.reject(503, "no healthy backend")
"""

from __future__ import annotations

from dataclasses import dataclass

from . import Config


@dataclass
class Reject:
    """What :meth:`Router.route` returns to refuse a request.

    >>> Reject(429, "busy").status
    429
    """

    status: int
    reason: str


class Router:
    """Base class of a router plugin; keep state (counters, weights) on ``self``."""

    name: str = "router"
    version: str = "0.1.0"

    def __init__(self, config: Config):
        self.config = config

    def route(self, request, candidates) -> "str | Reject":
        """Returns a candidate's ``id``, or a :class:`Reject`. ``request`` has
        ``tenant``, ``model``, ``prompt_tokens`` and ``prefix_hashes``; each
        candidate has ``id``, ``queue_depth``, ``running``, ``free_kv_fraction``,
        ``cached_prefix_tokens`` and ``healthy``."""
        return candidates[0].id

    @staticmethod
    def reject(status: int, reason: str) -> Reject:
        return Reject(status, reason)


def _lower(result):
    from wit_world.exports import router as wr

    if isinstance(result, Reject):
        return wr.RouteResult_Reject(wr.Rejection(status=result.status, reason=result.reason))
    if isinstance(result, str):
        return wr.RouteResult_Backend(result)
    raise TypeError(f"route returned {type(result).__name__}, not a backend id or Reject")
