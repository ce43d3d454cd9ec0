"""{{name}}: a weft tokenizer for byte-level BPE vocabularies (GPT-2 style,
as GGUF files carry them). It splits text by greedy longest match against the
vocabulary: simple, always valid, though not always the ids the model's own
merges would give. Extend `load` for other vocabularies."""

from weft_plugin import PluginError, export
from weft_plugin.tokenizer import Loaded, Tokenizer


def byte_chars():
    """GPT-2's reversible map from bytes to printable characters."""
    keep = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
    chars, n = {}, 0
    for b in range(256):
        if b in keep:
            chars[b] = chr(b)
        else:
            chars[b] = chr(256 + n)
            n += 1
    return chars


class Vocab(Loaded):
    def __init__(self, tokens, specials):
        self.tokens = tokens
        self.to_char = byte_chars()
        self.to_byte = {c: b for b, c in self.to_char.items()}
        self.specials = specials
        # Special tokens match too: a chat template writes them as text.
        self.ids = {t: i for i, t in enumerate(tokens)}
        self.longest = max(len(t) for t in tokens)

    def encode(self, text, add_special):
        s = "".join(self.to_char[b] for b in text.encode())
        out, i = [], 0
        while i < len(s):
            for n in range(min(self.longest, len(s) - i), 0, -1):
                id = self.ids.get(s[i:i + n])
                if id is not None:
                    out.append(id)
                    i += n
                    break
            else:
                raise PluginError(f"no token covers {s[i]!r}")
        return out

    def decode(self, ids, skip_special):
        return b"".join(self.token_bytes([i for i in ids if not (skip_special and i in self.specials)])).decode(
            errors="replace")

    def vocab_size(self):
        return len(self.tokens)

    def special_tokens(self):
        return [(i, self.tokens[i], kind) for i, kind in self.specials.items()]

    def token_bytes(self, ids):
        out = []
        for i in ids:
            t = self.tokens[i] if 0 <= i < len(self.tokens) else ""
            out.append(t.encode() if i in self.specials else bytes(self.to_byte.get(c, 63) for c in t))
        return out


@export
class Plugin(Tokenizer):
    name = "{{name}}"
    version = "0.1.0"

    def load(self, source):
        if not hasattr(source.value, "tokens") or source.value.model != "gpt2":
            raise PluginError("this tokenizer reads byte-level BPE (gpt2) vocabularies from GGUF files")
        g = source.value
        specials = {i: "control" for i, t in enumerate(g.token_types) if t == 3}
        for id, kind in ((g.bos, "bos"), (g.eos, "eos"), (g.eot, "eot"), (g.pad, "pad")):
            if id is not None:
                specials[id] = kind
        return Vocab(list(g.tokens), specials)
