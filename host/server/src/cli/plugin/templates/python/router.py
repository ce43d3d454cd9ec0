"""{{name}}: a weft router. Sends each request to the healthy engine with the
least work (queued + running), preferring one that caches the prompt's prefix."""

from weft_plugin import export
from weft_plugin.router import Router


@export
class Plugin(Router):
    name = "{{name}}"
    version = "0.1.0"

    def __init__(self, config):
        # Tokens of cached prefix worth one request of queue (config `prefix_weight`).
        self.prefix_weight = float(config.get("prefix_weight", "256"))

    def route(self, request, candidates):
        healthy = [c for c in candidates if c.healthy]
        if not healthy:
            return self.reject(503, "no healthy engine")
        cost = lambda c: c.queue_depth + c.running - c.cached_prefix_tokens / self.prefix_weight
        return min(healthy, key=cost).id
