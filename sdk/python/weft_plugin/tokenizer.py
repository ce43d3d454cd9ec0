"""The tokenizer role: text to token ids and back, for one vocabulary.

The :class:`Tokenizer` plugin object loads a :class:`Loaded` tokenizer per
model from the model's own description (a Hugging Face ``tokenizer.json`` text
or a GGUF's vocabulary). Decoding streams through :meth:`Loaded.decode`
calls the host makes with growing id lists, so a simple plugin implements only
``encode``, ``decode``, ``vocab_size`` and ``token_bytes``.

Example::

    from weft_plugin import export
    from weft_plugin.tokenizer import Loaded, Tokenizer

    class Bytes(Loaded):
        def encode(self, text, add_special):
            return list(text.encode())
        def decode(self, ids, skip_special):
            return bytes(i for i in ids if i < 256).decode(errors="replace")
        def vocab_size(self):
            return 256
        def token_bytes(self, ids):
            return [bytes([i]) for i in ids]

    @export
    class ByteTokenizer(Tokenizer):
        name = "bytes"

        def load(self, source):
            return Bytes()
"""

from __future__ import annotations

from typing import List

from . import Config


class Loaded:
    """One loaded vocabulary."""

    def encode(self, text: str, add_special: bool) -> List[int]:
        raise NotImplementedError

    def decode(self, ids: List[int], skip_special: bool) -> str:
        raise NotImplementedError

    def vocab_size(self) -> int:
        raise NotImplementedError

    def special_tokens(self) -> list:
        """``(id, text, kind)`` tuples; kind is bos, eos, eot, unk, pad, control or user-defined."""
        return []

    def token_bytes(self, ids: List[int]) -> List[bytes]:
        raise NotImplementedError


class Tokenizer:
    """Base class of a tokenizer plugin."""

    name: str = "tokenizer"
    version: str = "0.1.0"

    def __init__(self, config: Config):
        self.config = config

    def load(self, source) -> Loaded:
        """``source.value`` is the tokenizer.json text (``TokenizerSource_HfJson``)
        or the GGUF vocabulary record (``TokenizerSource_Gguf``)."""
        raise NotImplementedError
