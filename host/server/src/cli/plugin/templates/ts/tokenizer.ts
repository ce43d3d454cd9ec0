// {{name}}: a weft tokenizer for byte-level BPE vocabularies (GPT-2 style, as
// GGUF files carry them). It splits text by greedy longest match against the
// vocabulary: simple, always valid, though not always the ids the model's own
// merges would give. Extend `load` for other vocabularies.
import { PluginError } from "./weft-plugin.js";
import type { Config, Loaded, SpecialKind, Tokenizer, TokenizerSource } from "./weft-plugin.js";

/** GPT-2's reversible map from bytes to printable characters. */
export function byteChars(): string[] {
  const chars: string[] = [];
  let n = 0;
  for (let b = 0; b < 256; b++) {
    const keep = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
    chars.push(String.fromCodePoint(keep ? b : 256 + n++));
  }
  return chars;
}

export class Vocab implements Loaded {
  private toChar = byteChars();
  private toByte = new Map(this.toChar.map((c, b) => [c, b] as [string, number]));
  // Special tokens match too: a chat template writes them as text.
  private ids: Map<string, number>;
  private longest: number;

  constructor(
    private tokens: string[],
    private specials: Map<number, SpecialKind>,
  ) {
    this.ids = new Map(tokens.map((t, i) => [t, i] as [string, number]));
    this.longest = Math.max(...tokens.map((t) => [...t].length));
  }

  encode(text: string, _addSpecial: boolean): number[] {
    const s = [...new TextEncoder().encode(text)].map((b) => this.toChar[b]);
    const out: number[] = [];
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

  decode(ids: number[], skipSpecial: boolean): string {
    const bytes = this.tokenBytes(ids.filter((i) => !(skipSpecial && this.specials.has(i))));
    return new TextDecoder().decode(Uint8Array.from(bytes.flatMap((b) => [...b])));
  }

  vocabSize(): number {
    return this.tokens.length;
  }

  specialTokens(): [number, string, SpecialKind][] {
    return [...this.specials].map(([i, kind]) => [i, this.tokens[i], kind]);
  }

  tokenBytes(ids: number[]): Uint8Array[] {
    return ids.map((i) => {
      const t = this.tokens[i] ?? "";
      if (this.specials.has(i)) return new TextEncoder().encode(t);
      return Uint8Array.from([...t].map((c) => this.toByte.get(c) ?? 63));
    });
  }
}

export default class Plugin implements Tokenizer {
  static metadata = { name: "{{name}}", version: "0.1.0", description: "greedy byte-level BPE" };

  constructor(_config: Config) {}

  load(source: TokenizerSource): Loaded {
    if (source.tag !== "gguf" || source.val.model !== "gpt2") {
      throw new PluginError("this tokenizer reads byte-level BPE (gpt2) vocabularies from GGUF files");
    }
    const g = source.val;
    const specials = new Map<number, SpecialKind>();
    g.tokenTypes.forEach((t, i) => {
      if (t === 3) specials.set(i, "control");
    });
    const named: [number | undefined, SpecialKind][] = [[g.bos, "bos"], [g.eos, "eos"], [g.eot, "eot"], [g.pad, "pad"]];
    for (const [id, kind] of named) if (id !== undefined) specials.set(id, kind);
    return new Vocab(g.tokens, specials);
  }
}
