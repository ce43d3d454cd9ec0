# The transform interface's resource: one response filter per response.
import weft_plugin
from weft_plugin.transform import _lower
from wit_world.exports import transform as wt


class ResponseStream(wt.ResponseStream):
    def __init__(self, request):
        self._filter = weft_plugin.instance().response_filter(request)

    def on_chunk(self, text):
        return _lower(self._filter.on_chunk_outputs(text))

    def on_end(self):
        return _lower(self._filter.on_end_outputs())
