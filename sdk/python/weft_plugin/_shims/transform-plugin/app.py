# Entry of a Python transform component (weft plugin build passes it to
# componentize-py): the world's exports, delegating to the author's object.
import plugin  # noqa: F401  (the author's module: @weft_plugin.export runs on import)
import weft_plugin
import wit_world
from componentize_py_types import Err
from wit_world import exports
from wit_world.exports import transform as wt
from wit_world.imports.types import PluginMetadata
from weft_plugin.transform import Rejected


class WitWorld(wit_world.WitWorld):
    def metadata(self):
        return PluginMetadata(*weft_plugin._metadata())

    def init(self, config):
        try:
            weft_plugin._init(config)
        except Exception as e:  # any failure refuses the configuration, with its message
            raise Err(f"{type(e).__name__}: {e}")


class Transform(exports.Transform):
    def on_request(self, req):
        try:
            return weft_plugin.instance().on_request(req)
        except Rejected as r:
            raise Err(wt.Rejection(status=r.status, message=r.message))
