# The sampler interface's resource: one session per sequence.
import weft_plugin
from weft_plugin import _call
from weft_plugin.sampler import _lower_decision
from wit_world.exports import sampler as ws


class Session(ws.Session):
    @classmethod
    def create(cls, params, args, prompt):
        s = cls.__new__(cls)
        s._inner = _call(weft_plugin.instance().session, params, args, prompt)
        return s

    def step(self, candidates):
        return _lower_decision(_call(self._inner.step, candidates))

    def step_full(self, logits):
        return _lower_decision(_call(self._inner.step_full, logits))

    def accept(self, token):
        stop = _call(self._inner.accept, token)
        return ws.AcceptOutcome_Stop() if stop else ws.AcceptOutcome_Continue()
