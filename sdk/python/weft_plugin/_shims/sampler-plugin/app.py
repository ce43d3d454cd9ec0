# Entry of a Python sampler component: the world's exports, delegating to the author's object.
import plugin  # noqa: F401
import weft_plugin
import wit_world
from componentize_py_types import Err
from wit_world import exports
from wit_world.exports import sampler as ws
from wit_world.imports.types import PluginMetadata


class WitWorld(wit_world.WitWorld):
    def metadata(self):
        return PluginMetadata(*weft_plugin._metadata())

    def init(self, config):
        try:
            weft_plugin._init(config)
        except Exception as e:
            raise Err(f"{type(e).__name__}: {e}")


class Sampler(exports.Sampler):
    def capabilities(self):
        cls = weft_plugin.exported()
        return ws.SamplerCapabilities(top_k=cls.top_k, needs_full_logits=cls.needs_full_logits)
