"""{{name}}: a weft sampler. Samples as the request asks, but never hotter
than config `max_temperature`, and never picks a banned token id (config
`banned`, comma-separated ids)."""

from weft_plugin import PluginError, export
from weft_plugin.sampler import Plan, Sampler, Session


class Capped(Session):
    def __init__(self, params, cap, banned):
        super().__init__(params)
        self.cap, self.banned = cap, banned

    def step(self, candidates):
        plan = Plan.from_params(self.params)
        plan.temperature = min(plan.temperature, self.cap)
        plan.banned = list(self.banned)
        return plan


@export
class Plugin(Sampler):
    name = "{{name}}"
    version = "0.1.0"
    top_k = 8

    def __init__(self, config):
        try:
            self.cap = float(config.get("max_temperature", "0.7"))
            self.banned = [int(t) for t in config.get("banned", "").split(",") if t.strip()]
        except ValueError as e:
            raise PluginError(f"bad configuration: {e}")

    def session(self, params, args, prompt):
        return Capped(params, self.cap, self.banned)
