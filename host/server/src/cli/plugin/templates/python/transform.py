"""{{name}}: a weft transform. Refuses requests that mention a blocked word
(config `blocked`, comma-separated) and tags the answer's end."""

from weft_plugin import export
from weft_plugin.transform import Rejected, ResponseFilter, Transform


class Tag(ResponseFilter):
    def __init__(self, tag):
        self.tag = tag

    def on_end(self):
        return self.tag


@export
class Plugin(Transform):
    name = "{{name}}"
    version = "0.1.0"

    def __init__(self, config):
        self.blocked = [w.strip().lower() for w in config.get("blocked", "").split(",") if w.strip()]
        self.tag = config.get("tag", "")

    def on_request(self, request):
        texts = [m.content for m in request.messages or []] + [request.prompt or ""]
        for word in self.blocked:
            if any(word in t.lower() for t in texts):
                raise Rejected(400, f"requests may not mention {word!r}")
        return request

    def response_filter(self, request):
        return Tag(self.tag)
