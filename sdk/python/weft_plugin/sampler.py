"""The sampler role: choose each next token of one sequence.

A :class:`Sampler` (one per component instance) opens a :class:`Session` per
sequence. Each step a session sees the row's best ``top_k`` candidates (or the
full row, with ``needs_full_logits``) and returns a token id, or a
:class:`Plan` that the host executes natively on the whole row (masks,
penalties, temperature, top-k/p, min-p and the seeded draw).

Example::

    from weft_plugin import export
    from weft_plugin.sampler import Plan, Sampler, Session

    class Cool(Session):
        def step(self, candidates):
            plan = Plan.from_params(self.params)
            plan.temperature = min(plan.temperature, 0.7)
            return plan

    @export
    class Cooler(Sampler):
        name = "cooler"

        def session(self, params, args, prompt):
            return Cool(params)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional, Tuple, Union

from . import Config


@dataclass
class Plan:
    """Host-side sampling for this step (the contract's ``plan``).

    >>> Plan(temperature=0.0).top_k
    0
    """

    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    min_p: float = 0.0
    repetition_penalty: float = 1.0
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    logit_bias: List[Tuple[int, float]] = field(default_factory=list)
    allowed: Optional[List[int]] = None
    banned: List[int] = field(default_factory=list)

    @staticmethod
    def from_params(p) -> "Plan":
        """The plan that samples exactly as the request's parameters ask."""
        return Plan(p.temperature, p.top_k, p.top_p, p.min_p, p.repetition_penalty, p.presence_penalty,
                    p.frequency_penalty, list(p.logit_bias))


class Session:
    """One sequence's sampling state."""

    def __init__(self, params):
        self.params = params

    def step(self, candidates) -> Union[int, Plan]:
        """``candidates``: the best tokens (``id``, ``logit``), best first."""
        return Plan.from_params(self.params)

    def step_full(self, logits: List[float]) -> Union[int, Plan]:
        """Called instead of :meth:`step` when the sampler declares ``needs_full_logits``."""
        return Plan.from_params(self.params)

    def accept(self, token: int) -> bool:
        """The token the host committed; return True to end the sequence."""
        return False


class Sampler:
    """Base class of a sampler plugin. ``top_k`` and ``needs_full_logits`` are
    its capabilities: what the host sends each step."""

    name: str = "sampler"
    version: str = "0.1.0"
    top_k: int = 64
    needs_full_logits: bool = False

    def __init__(self, config: Config):
        self.config = config

    def session(self, params, args: str, prompt: List[int]) -> Session:
        """A session for one sequence. ``args`` is the request's sampler
        arguments (JSON text); raise :class:`weft_plugin.PluginError` to refuse them."""
        return Session(params)


def _lower_decision(d):
    from wit_world.exports import sampler as ws

    if isinstance(d, bool) or not isinstance(d, (int, Plan)):
        raise TypeError(f"a session step returned {type(d).__name__}, not a token id or Plan")
    if isinstance(d, int):
        return ws.Decision_Token(d)
    return ws.Decision_Plan(ws.Plan(
        temperature=d.temperature, top_k=d.top_k, top_p=d.top_p, min_p=d.min_p,
        repetition_penalty=d.repetition_penalty, presence_penalty=d.presence_penalty,
        frequency_penalty=d.frequency_penalty, logit_bias=list(d.logit_bias),
        allowed=None if d.allowed is None else list(d.allowed), banned=list(d.banned)))
