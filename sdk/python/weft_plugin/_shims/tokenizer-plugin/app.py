# Entry of a Python tokenizer component: the world's exports, delegating to the author's object.
import plugin  # noqa: F401
import weft_plugin
from wit_world import exports

WitWorld = weft_plugin._world()


class Tokenizer(exports.Tokenizer):
    pass
