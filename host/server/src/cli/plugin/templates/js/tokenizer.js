// {{name}}: a weft tokenizer for byte-level BPE vocabularies (GPT-2 style, as
// GGUF files carry them). It splits text by greedy longest match against the
// vocabulary: simple, always valid, though not always the ids the model's own
// merges would give. Extend `load` for other vocabularies.
// @ts-check
import { PluginError } from "./weft-plugin.js";
/** @typedef {import("./weft-plugin.js").Loaded} Loaded */
/** @typedef {import("./weft-plugin.js").Tokenizer} Tokenizer */

/** GPT-2's reversible map from bytes to printable characters. */
export function byteChars() {
  const chars = [];
  let n = 0;
  for (let b = 0; b < 256; b++) {
    const keep = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
    chars.push(String.fromCodePoint(keep ? b : 256 + n++));
  }
  return chars;
}

/** @implements {Loaded} */
export class Vocab {
  /**
   * @param {string[]} tokens
   * @param {Map<number, import("./weft-plugin.js").SpecialKind>} specials
   */
  constructor(tokens, specials) {
    this.tokens = tokens;
    this.specials = specials;
    this.toChar = byteChars();
    this.toByte = new Map(this.toChar.map((c, b) => [c, b]));
    // Special tokens match too: a chat template writes them as text.
    this.ids = new Map(tokens.map((t, i) => [t, i]));
    this.longest = Math.max(...tokens.map((t) => [...t].length));
  }
  /** @param {string} text @param {boolean} addSpecial */
  encode(text, addSpecial) {
    const s = [...new TextEncoder().encode(text)].map((b) => this.toChar[b]);
    const out = [];
    for (let i = 0; i < s.length; ) {
      let n = Math.min(this.longest, s.length - i);
      for (; n > 0; n--) {
        const id = this.ids.get(s.slice(i, i + n).join(""));
        if (id !== undefined) {
          out.push(id);
          i += n;
          break;
        }
      }
      if (n === 0) throw new PluginError(`no token covers ${JSON.stringify(s[i])}`);
    }
    return out;
  }
  /** @param {number[]} ids @param {boolean} skipSpecial */
  decode(ids, skipSpecial) {
    const bytes = this.tokenBytes(ids.filter((i) => !(skipSpecial && this.specials.has(i))));
    return new TextDecoder().decode(Uint8Array.from(bytes.flatMap((b) => [...b])));
  }
  vocabSize() {
    return this.tokens.length;
  }
  /** @returns {[number, string, import("./weft-plugin.js").SpecialKind][]} */
  specialTokens() {
    return [...this.specials].map(([i, kind]) => [i, this.tokens[i], kind]);
  }
  /** @param {number[]} ids */
  tokenBytes(ids) {
    return ids.map((i) => {
      const t = this.tokens[i] ?? "";
      if (this.specials.has(i)) return new TextEncoder().encode(t);
      return Uint8Array.from([...t].map((c) => this.toByte.get(c) ?? 63));
    });
  }
}

/** @implements {Tokenizer} */
export default class Plugin {
  static metadata = { name: "{{name}}", version: "0.1.0", description: "greedy byte-level BPE" };

  /** @param {import("./weft-plugin.js").Config} config */
  constructor(config) {}

  /** @param {import("./weft-plugin.js").TokenizerSource} source */
  load(source) {
    if (source.tag !== "gguf" || source.val.model !== "gpt2") {
      throw new PluginError("this tokenizer reads byte-level BPE (gpt2) vocabularies from GGUF files");
    }
    const g = source.val;
    /** @type {Map<number, import("./weft-plugin.js").SpecialKind>} */
    const specials = new Map();
    g.tokenTypes.forEach((t, i) => t === 3 && specials.set(i, "control"));
    for (const [id, kind] of /** @type {const} */ ([[g.bos, "bos"], [g.eos, "eos"], [g.eot, "eot"], [g.pad, "pad"]])) {
      if (id !== undefined) specials.set(id, kind);
    }
    return new Vocab(g.tokens, specials);
  }
}
