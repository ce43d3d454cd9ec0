import unittest

from plugin import Vocab, byte_chars


class TestPlugin(unittest.TestCase):
    def test_round_trips_any_text(self):
        chars = byte_chars()
        tokens = [chars[b] for b in range(256)] + ["he", "hel", "hello", "<eos>"]
        v = Vocab(tokens, {len(tokens) - 1: "eos"})
        ids = v.encode("hello, héllo", False)
        self.assertEqual(ids[0], 258)  # greedy: the longest token first
        self.assertEqual(v.decode(ids, True), "hello, héllo")
        self.assertEqual(v.decode(ids + [len(tokens) - 1], False), "hello, héllo<eos>")


if __name__ == "__main__":
    unittest.main()
