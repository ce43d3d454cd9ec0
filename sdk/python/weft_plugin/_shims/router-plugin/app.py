# Entry of a Python router component: the world's exports, delegating to the author's object.
import plugin  # noqa: F401
import weft_plugin
from wit_world import exports
from weft_plugin.router import _lower

WitWorld = weft_plugin._world()


class Router(exports.Router):
    def route(self, request, candidates):
        return _lower(weft_plugin.instance().route(request, candidates))
