# Entry of a Python sampler component: the world's exports, delegating to the author's object.
import plugin  # noqa: F401
import weft_plugin
from wit_world import exports
from wit_world.exports import sampler as ws

WitWorld = weft_plugin._world()


class Sampler(exports.Sampler):
    def capabilities(self):
        cls = weft_plugin.exported()
        return ws.SamplerCapabilities(top_k=cls.top_k, needs_full_logits=cls.needs_full_logits)
