"""Refuses prompts that try to override the system's instructions, and masks
e-mail addresses in the model's answer as it streams out."""

import json
import re

from weft_plugin import PluginError, counter_add, export, log
from weft_plugin.transform import Rejected, ResponseFilter, Transform

DEFAULT_PHRASES = [
    "ignore previous instructions",
    "ignore all previous instructions",
    "disregard the system prompt",
    "you are now in developer mode",
]

EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
# Text that could still grow into an address: held back until the next chunk.
PARTIAL = re.compile(r"[A-Za-z0-9._%+@-]+$")


class MaskEmails(ResponseFilter):
    def __init__(self, mask):
        self.mask = mask
        self.held = ""

    def on_chunk(self, text):
        text = self.held + text
        tail = PARTIAL.search(text)
        cut = tail.start() if tail else len(text)
        self.held = text[cut:]
        return EMAIL.sub(self.mask, text[:cut])

    def on_end(self):
        text, self.held = self.held, ""
        return EMAIL.sub(self.mask, text)


@export
class PromptGuard(Transform):
    """Refuses prompt-injection attempts and masks e-mail addresses."""

    name = "prompt-guard-py"
    version = "0.1.0"

    def __init__(self, config):
        phrases = config.get("phrases")
        try:
            self.phrases = json.loads(phrases) if phrases else DEFAULT_PHRASES
        except ValueError as e:
            raise PluginError(f"`phrases` is not a JSON list of strings: {e}")
        if not isinstance(self.phrases, list) or not all(isinstance(p, str) for p in self.phrases):
            raise PluginError("`phrases` must be a JSON list of strings")
        self.phrases = [p.lower() for p in self.phrases]
        self.status = int(config.get("status", "400"))
        self.mask = config.get("mask", "[email]")
        self.refused = 0

    def on_request(self, request):
        texts = [m.content for m in request.messages or []] + ([request.prompt] if request.prompt else [])
        for text in texts:
            low = " ".join(text.lower().split())
            for p in self.phrases:
                if p in low:
                    self.refused += 1
                    counter_add("refused", 1)
                    log("info", f"refused a prompt containing {p!r} ({self.refused} so far)")
                    raise Rejected(self.status, f"prompt refused by the guard: it contains {p!r}")
        return request

    def response_filter(self, request):
        return MaskEmails(self.mask)
