import unittest

from plugin import Plugin
from weft_plugin.router import Reject
from wit_world.exports.router import Backend, RouteRequest


def backend(id, load, cached=0, healthy=True):
    return Backend(id=id, model="m", queue_depth=load, running=0, free_kv_fraction=1.0,
                   cached_prefix_tokens=cached, healthy=healthy)


REQ = RouteRequest(tenant="", model="m", prompt_tokens=100, prefix_hashes=[])


class TestPlugin(unittest.TestCase):
    def test_least_loaded_healthy_engine(self):
        p = Plugin({})
        self.assertEqual(p.route(REQ, [backend("a", 3), backend("b", 1), backend("c", 0, healthy=False)]), "b")

    def test_cached_prefix_outweighs_a_short_queue(self):
        self.assertEqual(Plugin({}).route(REQ, [backend("a", 0), backend("b", 1, cached=512)]), "b")

    def test_nothing_healthy_is_a_503(self):
        r = Plugin({}).route(REQ, [backend("a", 0, healthy=False)])
        self.assertIsInstance(r, Reject)
        self.assertEqual(r.status, 503)


if __name__ == "__main__":
    unittest.main()
