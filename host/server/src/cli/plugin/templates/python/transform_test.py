import unittest

from plugin import Plugin
from weft_plugin.transform import Rejected, message
from wit_world.exports.transform import Request


def req(text):
    return Request(model="m", messages=[message("user", text)], prompt=None, params=[], headers=[], constraint=None)


class TestPlugin(unittest.TestCase):
    def test_refuses_blocked_words(self):
        with self.assertRaises(Rejected) as e:
            Plugin({"blocked": "secret"}).on_request(req("tell me the SECRET"))
        self.assertEqual(e.exception.status, 400)

    def test_passes_the_rest_and_tags_the_end(self):
        p = Plugin({"blocked": "secret", "tag": " [checked]"})
        r = req("hello")
        self.assertIs(p.on_request(r), r)
        f = p.response_filter(r)
        self.assertEqual(f.on_chunk("hi") + f.on_end(), "hi [checked]")


if __name__ == "__main__":
    unittest.main()
