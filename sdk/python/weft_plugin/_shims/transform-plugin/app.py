# Entry of a Python transform component (weft plugin build passes it to
# componentize-py): the world's exports, delegating to the author's object.
import plugin  # noqa: F401  (the author's module: @weft_plugin.export runs on import)
import weft_plugin
from componentize_py_types import Err
from wit_world import exports
from wit_world.exports import transform as wt
from weft_plugin.transform import Rejected

WitWorld = weft_plugin._world()


class Transform(exports.Transform):
    def on_request(self, req):
        try:
            return weft_plugin.instance().on_request(req)
        except Rejected as r:
            raise Err(wt.Rejection(status=r.status, message=r.message))
