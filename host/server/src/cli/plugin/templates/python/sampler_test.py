import unittest

from plugin import Plugin
from weft_plugin import PluginError
from weft_plugin.sampler import Plan
from wit_world.exports.sampler import SamplingParams
from wit_world.imports.types import Candidate


def params(t):
    return SamplingParams(temperature=t, top_p=1.0, top_k=0, min_p=0.0, repetition_penalty=1.0,
                          presence_penalty=0.0, frequency_penalty=0.0, logit_bias=[], seed=1, max_tokens=8)


class TestPlugin(unittest.TestCase):
    def test_caps_temperature_and_bans(self):
        s = Plugin({"max_temperature": "0.5", "banned": "7, 9"}).session(params(1.2), "", [1, 2])
        plan = s.step([Candidate(id=3, logit=1.0)])
        self.assertIsInstance(plan, Plan)
        self.assertEqual((plan.temperature, plan.banned), (0.5, [7, 9]))

    def test_cooler_requests_stay_cool(self):
        s = Plugin({}).session(params(0.2), "", [])
        self.assertAlmostEqual(s.step([]).temperature, 0.2)

    def test_bad_config_is_refused(self):
        with self.assertRaises(PluginError):
            Plugin({"banned": "x"})


if __name__ == "__main__":
    unittest.main()
