# The tokenizer interface's resources: a loaded vocabulary and a streaming decoder.
import weft_plugin
from weft_plugin import _call
from wit_world.exports import tokenizer as wt


class Tokenizer(wt.Tokenizer):
    @classmethod
    def load(cls, source):
        t = cls.__new__(cls)
        t._inner = _call(weft_plugin.instance().load, source)
        return t

    def encode(self, text, add_special):
        return _call(self._inner.encode, text, add_special)

    def decode(self, ids, skip_special):
        return _call(self._inner.decode, ids, skip_special)

    def vocab_size(self):
        return self._inner.vocab_size()

    def special_tokens(self):
        return [wt.SpecialToken(id=i, text=t, kind=wt.SpecialKind[k.upper().replace("-", "_")])
                for i, t, k in self._inner.special_tokens()]

    def token_bytes(self, ids):
        return self._inner.token_bytes(ids)

    def decoder(self, skip_special):
        return Decoder(self._inner, skip_special)


class Decoder(wt.Decoder):
    """Streams text by decoding the growing id list; a trailing partial
    character (U+FFFD) is held until the next token completes it."""

    def __init__(self, inner, skip_special):
        self._inner, self._skip, self._ids, self._sent = inner, skip_special, [], 0

    def push(self, id):
        self._ids.append(id)
        text = self._inner.decode(self._ids, self._skip)
        if text.endswith("\ufffd"):
            return ""
        out, self._sent = text[self._sent:], len(text)
        return out

    def finish(self):
        text = self._inner.decode(self._ids, self._skip)
        out, self._sent = text[self._sent:], len(text)
        return out
