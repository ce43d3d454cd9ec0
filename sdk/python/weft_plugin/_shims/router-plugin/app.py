# Entry of a Python router component: the world's exports, delegating to the author's object.
import plugin  # noqa: F401
import weft_plugin
import wit_world
from componentize_py_types import Err
from wit_world import exports
from wit_world.imports.types import PluginMetadata
from weft_plugin.router import _lower


class WitWorld(wit_world.WitWorld):
    def metadata(self):
        return PluginMetadata(*weft_plugin._metadata())

    def init(self, config):
        try:
            weft_plugin._init(config)
        except Exception as e:
            raise Err(f"{type(e).__name__}: {e}")


class Router(exports.Router):
    def route(self, request, candidates):
        return _lower(weft_plugin.instance().route(request, candidates))
