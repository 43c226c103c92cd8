/**
 * Deterministic synthetic Gemma-4 models (the real E2B weights cannot be downloaded here).
 *
 * `planSyntheticGemma4(config)` lists every GGUF key and tensor (names, ggml `ne`, types, byte sizes and
 * offsets) exactly as a llama.cpp conversion of Gemma 4 names them (design/gemma4.md §5);
 * `writeSyntheticGemma4(path, config)` streams the file tensor by tensor. Every tensor's values come from
 * its own random stream keyed by (seed, tensor name), so changing one tensor's type or dropping a tensor
 * never changes another tensor's values. Weight scales follow design/numerics.md so that the network is
 * well conditioned (perturbations do not explode with depth) and attention is neither flat nor one-hot.
 */
import { NlaError } from '../../src/errors';
import { encodeGgufHeader, GgufWriter, type GgufKv, type GgufTensorLayout } from './gguf-writer';
import { GgmlType, ggmlTypeFromName, ggmlTypeName, ggmlTypeTraits, quantize, type EncodableTypeName } from './ggml-quants';

// Math builtins bound once: under jest's vm context every `Math.x` lookup goes through the global proxy (~50x slower).
const { cos, floor, imul, log, max, min, sin, sqrt, trunc } = Math;
const TWO_PI = 2 * Math.PI;

// ================================================================ deterministic random streams

function hash32(str: string, seed: number): number {
  // MurmurHash3-style mixing over UTF-16 code units
  let h = (seed ^ 0x9e3779b9) >>> 0;
  for (let i = 0; i < str.length; i++) {
    let k = str.charCodeAt(i);
    k = imul(k, 0xcc9e2d51);
    k = (k << 15) | (k >>> 17);
    k = imul(k, 0x1b873593);
    h ^= k;
    h = (h << 13) | (h >>> 19);
    h = (imul(h, 5) + 0xe6546b64) >>> 0;
  }
  h ^= str.length;
  h ^= h >>> 16;
  h = imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/**
 * xoshiro128** seeded through splitmix32 from (seed, name). Normals by Box-Muller (both values used).
 * Integer seeds of any size are folded to 53 bits.
 */
export class RandomStream {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;
  private spare: number | null = null;

  constructor(seed: number, name: string) {
    if (!Number.isSafeInteger(seed)) throw new NlaError('ERR_NLA_INVALID_ARG', `seed must be a safe integer, got ${seed}`);
    const lo = seed >>> 0;
    const hi = floor(seed / 4294967296) >>> 0;
    let x = (hash32(name, lo) ^ imul(hi, 0x27d4eb2d)) >>> 0;
    const next = (): number => {
      x = (x + 0x9e3779b9) >>> 0;
      let z = x;
      z = imul(z ^ (z >>> 16), 0x85ebca6b);
      z = imul(z ^ (z >>> 13), 0xc2b2ae35);
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.s0 = next();
    this.s1 = next() ^ hash32(name, hi ^ 0x5bd1e995);
    this.s2 = next();
    this.s3 = next() | 1;
  }

  /** Next 32 random bits. */
  nextU32(): number {
    const result = imul(((imul(this.s1, 5) << 7) | (imul(this.s1, 5) >>> 25)) >>> 0, 9) >>> 0;
    const t = this.s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = (this.s3 << 11) | (this.s3 >>> 21);
    return result;
  }

  /** Uniform in the open interval (0, 1). */
  uniform(): number {
    return (this.nextU32() + 0.5) / 4294967296;
  }

  /** Standard normal. */
  normal(): number {
    if (this.spare !== null) {
      const v = this.spare;
      this.spare = null;
      return v;
    }
    const u1 = this.uniform();
    const u2 = this.uniform();
    const r = sqrt(-2 * log(u1));
    this.spare = r * sin(TWO_PI * u2);
    return r * cos(TWO_PI * u2);
  }

  fillNormal(out: Float32Array, std: number, mean = 0): Float32Array {
    for (let i = 0; i < out.length; i++) out[i] = mean + std * this.normal();
    return out;
  }

  fillUniform(out: Float32Array, lo: number, hi: number): Float32Array {
    for (let i = 0; i < out.length; i++) out[i] = lo + (hi - lo) * this.uniform();
    return out;
  }
}

// ================================================================ vocabulary

/** llama.cpp token types (tokenizer.ggml.token_type). */
export enum TokenType {
  UNDEFINED = 0,
  NORMAL = 1,
  UNKNOWN = 2,
  CONTROL = 3,
  USER_DEFINED = 4,
  UNUSED = 5,
  BYTE = 6,
}

export interface SyntheticVocab {
  readonly tokens: readonly string[];
  readonly types: readonly TokenType[];
  /** BPE merges "A B" in rank order. */
  readonly merges: readonly string[];
  /** Placeholder scores (-1000 like the real Gemma 4 GGUF); unused by BPE. */
  readonly scores?: readonly number[];
  readonly bos: number;
  readonly eos: number;
  readonly unk: number;
  readonly pad: number;
  readonly mask: number;
}

const SPACE_MARK = '\u2581'; // ▁

/**
 * Built-in English training corpus for the synthetic BPE. It contains the AR template and many
 * explanation-like sentences, so realistic AR prompts tokenize into tens of tokens.
 */
const BUILTIN_CORPUS = `Summary of the following text: <text>The model is thinking about a recipe for bread and the steps needed to bake it.</text> <summary>
Summary of the following text: <text>This activation is about a conversation between two friends who are planning a trip to the mountains.</text> <summary>
Summary of the following text: <text>The text describes a scientific experiment that measures the temperature of water as it slowly heats.</text> <summary>
Summary of the following text: <text>A short story about a dog that finds its way home after getting lost in the city.</text> <summary>
Summary of the following text: <text>The passage explains how a computer program reads a file, parses the numbers and prints the result.</text> <summary>
The model is processing a sentence about the weather. It expects the next word to describe rain or sunshine.
This feature fires on tokens that refer to time, such as yesterday, tomorrow, next week and last year.
The activation represents the concept of a question being asked, and the model prepares to give an answer.
The text is written in a formal tone and discusses the history of the printing press in Europe.
The writer is describing a beautiful sunset over the ocean, with orange and purple colors in the sky.
The model recognizes that the user wants help with a math problem involving fractions and percentages.
This explanation says that the representation encodes the subject of the sentence and its grammatical number.
The context is a list of ingredients: flour, sugar, butter, eggs, milk, salt and a little vanilla.
The model is tracking who is speaking in a dialogue and which character said each line.
The sentence is about the capital city of a country and the population of the region around it.
A programmer is writing a function that sorts an array of strings in alphabetical order.
The assistant explains that the error happens because the variable was never initialized before use.
The article reports on an election, the votes counted in each district and the final results.
The poem uses rhyme and rhythm to express feelings of love, loss and hope for the future.
The model predicts that the story will end happily, because the characters have resolved their conflict.
This neuron responds to words about animals, especially birds, fish, horses and other pets.
The text contains instructions for assembling a piece of furniture using screws and a small wrench.
The reader learns that the experiment failed because the sample was contaminated during transport.
The activation is strongly related to negative sentiment, complaints and expressions of frustration.
The document is a legal contract that defines the rights and responsibilities of both parties.
The speaker is giving a lecture about the structure of cells, proteins and the function of genes.
The model notices that the text switches from English to another language in the middle of the paragraph.
The summary should mention the main idea, the important details and the conclusion of the argument.
The text explains the rules of a board game, including how players move and how to win.
The model is uncertain whether the word refers to a river bank or a financial bank.
The email asks a colleague to review the report before the meeting on Monday morning.
The explanation describes a pattern where the model copies a name that appeared earlier in the context.
The paragraph compares two products and lists the advantages and disadvantages of each one.
The model is reasoning about numbers, counting items and adding them together step by step.
The passage describes a medical study that tested a new treatment on a small group of patients.
This activation encodes the idea of movement, travel and going from one place to another.
The text is a news story about a storm that caused damage to houses and roads near the coast.
The model represents the end of a sentence and expects a new paragraph to begin.
The user is asking for advice about learning to play the guitar and practicing every day.
The sentence describes a child who is excited about the first day of school.
The model attends to the opening quotation mark and predicts that a quotation will follow.
The explanation states that the feature tracks whether the text is inside a code block.
A teacher explains photosynthesis: plants use light, water and carbon dioxide to make sugar and oxygen.
The text discusses economic growth, inflation, interest rates and the price of goods.
The model believes the document is a recipe, because it sees measurements and cooking verbs.
The story follows a young woman who travels across the desert to find her lost brother.
The activation is about music: songs, instruments, concerts and the names of famous bands.
The passage is a review of a restaurant that praises the food but criticizes the slow service.
The model is completing a list and expects another item separated by a comma.
The text describes the rules of grammar for forming the past tense of regular verbs.
This representation captures the relationship between a person and the place where they live.
The model is focused on the date, the month and the year mentioned in the first sentence.
The article explains how vaccines train the immune system to recognize a virus.
The text is a set of questions and answers about how to reset a password on a website.
The model is aware that the previous sentence contained a negation, so the meaning is reversed.
The explanation mentions sports, teams, players, goals and the score at the end of the match.
The passage talks about climate change, rising sea levels and the melting of polar ice.
The writer argues that public libraries are important for education and for the community.
The model tracks the plural form of nouns and checks that the verb agrees with the subject.
The text describes a spaceship traveling to a distant planet and the crew preparing to land.
The activation relates to emotions such as joy, anger, fear, surprise and sadness.
This feature detects names of people, companies, cities and other proper nouns.
The model is reading a table of data with rows and columns of numbers and labels.
The document gives directions: turn left at the bridge, walk two blocks and the station is on the right.
The explanation notes that the model has learned a general rule rather than a specific fact.
The text is an informal message between friends with jokes, slang and short sentences.
The model represents a transition between topics, from the introduction to the main discussion.
The story is told in the first person by an old man remembering his childhood on a farm.
The activation is high when the text mentions money, prices, payments and bank accounts.
The passage describes the structure of the solar system, the sun, the planets and their moons.
The model expects a closing bracket because an opening bracket appeared earlier in the line.
The text describes a process in several steps: first, second, third and finally the last step.
The explanation says that the model is summarizing the content of the previous paragraph.
The user wants to translate a sentence from French into English and asks for the correct grammar.
The activation encodes information about the gender and the role of the person being described.
The text discusses artificial intelligence, neural networks, training data and language models.
The model has read a long document and now focuses on the final question at the end.
The passage describes a garden with roses, tulips, tall trees and a small pond with frogs.
The writer explains the difference between weather and climate using simple examples.
The model is predicting the name of a month after seeing the word January.
The text is a description of a house: three bedrooms, a kitchen, a large window and a garden.
This feature responds to tokens inside parentheses and to short clarifying remarks.
The activation is about health, exercise, sleep, healthy food and drinking enough water.
The model recognizes a famous quote and predicts the words that usually come next.
The explanation describes how the network combines information from earlier tokens with the current one.
The text tells the history of a small town, its founding, its growth and its decline.
The model is handling a request to write a short poem about the sea and the wind.
The passage describes a scientist who discovered a new species of insect in the forest.
The activation reflects a formal, polite style of writing with long sentences and careful words.
The text explains how to calculate the area of a circle using the radius and the number pi.
The model is considering several possible answers and choosing the most likely one.
In summary, the text is about what the model represents at this position in the sequence.
The summary of the text is short, clear and accurate, and it captures the most important concept.
`;

const UNUSED_PREFIX = '<unused';

/** Reserved low ids that mimic the real Gemma 4 layout (ids 0..493). */
function reservedLowTokens(): { tokens: string[]; types: TokenType[] } {
  const tokens: string[] = [];
  const types: TokenType[] = [];
  let unused = 0;
  const put = (id: number, s: string, t: TokenType): void => {
    while (tokens.length < id) {
      tokens.push(`${UNUSED_PREFIX}${unused++}>`);
      types.push(TokenType.NORMAL);
    }
    tokens.push(s);
    types.push(t);
  };
  put(0, '<pad>', TokenType.CONTROL);
  put(1, '<eos>', TokenType.CONTROL);
  put(2, '<bos>', TokenType.CONTROL);
  put(3, '<unk>', TokenType.CONTROL);
  put(4, '<mask>', TokenType.CONTROL);
  put(5, '[multimodal]', TokenType.NORMAL);
  put(46, '<|tool>', TokenType.CONTROL);
  put(47, '<tool|>', TokenType.CONTROL);
  put(48, '<|tool_call>', TokenType.USER_DEFINED);
  put(49, '<tool_call|>', TokenType.USER_DEFINED);
  put(50, '<|tool_response>', TokenType.USER_DEFINED);
  put(51, '<tool_response|>', TokenType.USER_DEFINED);
  put(52, '<|"|>', TokenType.USER_DEFINED);
  put(98, '<|think|>', TokenType.CONTROL);
  put(100, '<|channel>', TokenType.USER_DEFINED);
  put(101, '<channel|>', TokenType.USER_DEFINED);
  put(105, '<|turn>', TokenType.CONTROL);
  put(106, '<turn|>', TokenType.CONTROL);
  for (let n = 1; n <= 31; n++) put(106 + n, '\n'.repeat(n), TokenType.NORMAL); // 107..137
  for (let n = 2; n <= 31; n++) put(136 + n, SPACE_MARK.repeat(n), TokenType.NORMAL); // 138..167
  for (let b = 0; b < 256; b++) put(238 + b, `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`, TokenType.BYTE);
  return { tokens, types };
}

/** The media CONTROL tokens sit at the top of the real vocabulary; here they close the synthetic one. */
const TRAILING_CONTROL = ['<|image>', '<|audio>', '<|image|>', '<|audio|>', '<image|>', '<audio|>', '<|video|>'];

/** Characters with their own token besides the printable ASCII range. */
const EXTRA_CHARS = ['\t', '\u3297' /* ㊗ */, 'é', 'è', 'à', 'ü', 'ö', 'ä', 'ñ', 'ç', '’', '‘', '“', '”', '—', '–', '…', '•', '°', '€'];

function isDigit(s: string): boolean {
  return /[0-9]/.test(s);
}

function charClass(c: string): number {
  if (/[A-Za-z\u00C0-\u024F]/.test(c)) return 1; // letters
  if (/[0-9]/.test(c)) return 2; // digits: never merged, one word each
  if (c === SPACE_MARK) return 3;
  return 4; // punctuation and symbols
}

/** Split normalized text (▁ for space, no newlines) into training words: optional ▁ + a run of one class. */
function trainingWords(text: string): string[][] {
  const words: string[][] = [];
  const chars = Array.from(text);
  let i = 0;
  while (i < chars.length) {
    const w: string[] = [];
    while (i < chars.length && chars[i] === SPACE_MARK) {
      w.push(chars[i]!);
      i++;
    }
    if (w.length > 1) {
      // a space run is covered by the explicit ▁-run merges; keep only the last ▁ as a word prefix
      w.splice(0, w.length - 1);
    }
    if (i < chars.length) {
      const cls = charClass(chars[i]!);
      if (cls === 2) {
        w.push(chars[i++]!);
      } else {
        while (i < chars.length && charClass(chars[i]!) === cls) {
          w.push(chars[i++]!);
          if (cls === 4) break; // punctuation: one character per word (plus its ▁)
        }
      }
    }
    if (w.length > 0) words.push(w);
  }
  return words;
}

function runMerges(unit: string): string[] {
  const merges: string[] = [];
  for (let len = 2; len <= 31; len++) {
    for (let a = 1; a < len; a++) merges.push(`${unit.repeat(a)} ${unit.repeat(len - a)}`);
  }
  return merges;
}

const vocabCache = new Map<string, SyntheticVocab>();

/**
 * The built-in synthetic vocabulary (deterministic; cached per seed and size): Gemma-4-like special and
 * chat tokens at their real ids, newline and ▁ runs, the 256 byte tokens at 238 + byte, the printable
 * ASCII characters, a few other characters including ㊗, and BPE merges learned from a built-in corpus.
 * `seed` only changes how equally frequent merge candidates are ordered.
 */
export function buildSyntheticVocab(seed = 0, size = 4096): SyntheticVocab {
  const cacheKey = `${seed}:${size}`;
  const cached = vocabCache.get(cacheKey);
  if (cached) return cached;
  if (!Number.isInteger(size) || size < 1024) throw new NlaError('ERR_NLA_INVALID_ARG', `synthetic vocab size must be an integer >= 1024, got ${size}`);

  const { tokens, types } = reservedLowTokens();
  const index = new Map<string, number>();
  tokens.forEach((t, i) => index.set(t, i));
  const addToken = (s: string, t: TokenType): void => {
    if (index.has(s)) return;
    index.set(s, tokens.length);
    tokens.push(s);
    types.push(t);
  };
  addToken(SPACE_MARK, TokenType.NORMAL);
  for (let c = 0x21; c <= 0x7e; c++) addToken(String.fromCharCode(c), TokenType.NORMAL);
  for (const c of EXTRA_CHARS) addToken(c, TokenType.NORMAL);

  const merges: string[] = [...runMerges(SPACE_MARK), ...runMerges('\n')];
  const budget = size - tokens.length - TRAILING_CONTROL.length;

  // ---- BPE training over word types with incremental pair counts
  const wordCounts = new Map<string, { syms: string[]; count: number }>();
  for (const line of BUILTIN_CORPUS.split('\n')) {
    if (!line) continue;
    for (const w of trainingWords(line.replace(/ /g, SPACE_MARK))) {
      const key = w.join('\u0000');
      const e = wordCounts.get(key);
      if (e) e.count++;
      else wordCounts.set(key, { syms: w, count: 1 });
    }
  }
  // Variants of every corpus word (with/without the ▁ prefix, capitalized, lower-case) as rarer words, so
  // the merges cover the forms a realistic prompt uses; the corpus forms stay 4x more frequent.
  for (const e of [...wordCounts.values()]) e.count *= 4;
  for (const e of [...wordCounts.values()]) {
    const body = e.syms[0] === SPACE_MARK ? e.syms.slice(1) : e.syms;
    if (body.length < 2 || charClass(body[0]!) !== 1) continue;
    const text = body.join('');
    const forms = new Set([text, text.toLowerCase(), text[0]!.toUpperCase() + text.slice(1)]);
    for (const f of forms) {
      for (const w of [Array.from(f), [SPACE_MARK, ...Array.from(f)]]) {
        const key = w.join('\u0000');
        if (!wordCounts.has(key)) wordCounts.set(key, { syms: w, count: 1 });
      }
    }
  }
  const words = [...wordCounts.values()];
  const pairCounts = new Map<string, number>();
  const pairWords = new Map<string, Set<number>>();
  const mergeable = (a: string, b: string): boolean => !isDigit(a) && !isDigit(b) && !/^\u2581+$/.test(a + b);
  const addPairs = (wi: number, sign: number): void => {
    const w = words[wi]!;
    for (let j = 0; j + 1 < w.syms.length; j++) {
      const a = w.syms[j]!;
      const b = w.syms[j + 1]!;
      if (!mergeable(a, b)) continue;
      const k = `${a} ${b}`;
      pairCounts.set(k, (pairCounts.get(k) ?? 0) + sign * w.count);
      if (sign > 0) {
        let s = pairWords.get(k);
        if (!s) pairWords.set(k, (s = new Set()));
        s.add(wi);
      }
    }
  };
  words.forEach((_, wi) => addPairs(wi, +1));
  const tieCache = new Map<string, number>();
  const tieKey = (k: string): number => {
    let h = tieCache.get(k);
    if (h === undefined) tieCache.set(k, (h = hash32(k, seed)));
    return h;
  };

  let learned = 0;
  while (learned < budget) {
    let best: string | null = null;
    let bestCount = 0;
    let bestTie = 0;
    for (const [k, c] of pairCounts) {
      if (c <= 0 || c < bestCount) continue;
      const tk = tieKey(k);
      if (c > bestCount || tk < bestTie || (tk === bestTie && best !== null && k < best)) {
        best = k;
        bestCount = c;
        bestTie = tk;
      }
    }
    if (best === null) break;
    const sp = best.indexOf(' ');
    const a = best.slice(0, sp);
    const b = best.slice(sp + 1);
    const merged = a + b;
    merges.push(best);
    if (!index.has(merged)) {
      addToken(merged, TokenType.NORMAL);
      learned++;
    }
    const affected = [...(pairWords.get(best) ?? [])];
    for (const wi of affected) {
      addPairs(wi, -1);
      const w = words[wi]!;
      const out: string[] = [];
      for (let j = 0; j < w.syms.length; j++) {
        if (j + 1 < w.syms.length && w.syms[j] === a && w.syms[j + 1] === b) {
          out.push(merged);
          j++;
        } else {
          out.push(w.syms[j]!);
        }
      }
      w.syms = out;
      addPairs(wi, +1);
    }
    pairCounts.delete(best);
    pairWords.delete(best);
  }
  // corpus exhausted: fill with unused tokens so the size is exact
  let fill = 0;
  while (tokens.length < size - TRAILING_CONTROL.length) {
    addToken(`<unused_fill${fill++}>`, TokenType.NORMAL);
  }
  for (const t of TRAILING_CONTROL) addToken(t, TokenType.CONTROL);

  const vocab: SyntheticVocab = Object.freeze({
    tokens: Object.freeze(tokens),
    types: Object.freeze(types),
    merges: Object.freeze(merges),
    scores: Object.freeze(new Array<number>(tokens.length).fill(-1000)),
    bos: 2,
    eos: 1,
    unk: 3,
    pad: 0,
    mask: 4,
  });
  vocabCache.set(cacheKey, vocab);
  return vocab;
}

/** Wrap a real vocabulary (e.g. read from ggml-vocab-gemma-4.gguf) for the generator, with checks. */
export function vocabFromArrays(
  tokens: readonly string[],
  types: readonly number[],
  merges: readonly string[],
  ids: { bos?: number; eos?: number; unk?: number; pad?: number; mask?: number; scores?: readonly number[] } = {},
): SyntheticVocab {
  if (tokens.length === 0) throw new NlaError('ERR_NLA_TOKENIZER', 'vocabulary is empty');
  if (types.length !== tokens.length) throw new NlaError('ERR_NLA_TOKENIZER', `token_type has ${types.length} entries for ${tokens.length} tokens`);
  if (ids.scores && ids.scores.length !== tokens.length) throw new NlaError('ERR_NLA_TOKENIZER', `scores has ${ids.scores.length} entries for ${tokens.length} tokens`);
  for (const m of merges) {
    if (m.indexOf(' ', 1) < 0) throw new NlaError('ERR_NLA_TOKENIZER', `merge '${m}' has no separating space`);
  }
  const v = { bos: ids.bos ?? 2, eos: ids.eos ?? 1, unk: ids.unk ?? 3, pad: ids.pad ?? 0, mask: ids.mask ?? 4 };
  for (const [k, id] of Object.entries(v)) {
    if (!Number.isInteger(id) || id < 0 || id >= tokens.length) throw new NlaError('ERR_NLA_TOKENIZER', `${k} id ${id} is outside the vocabulary`);
  }
  return Object.freeze({
    tokens: [...tokens],
    types: types.map((t) => t as TokenType),
    merges: [...merges],
    scores: ids.scores ? [...ids.scores] : new Array<number>(tokens.length).fill(-1000),
    ...v,
  });
}

// ================================================================ configuration

export type WeightTypeName = EncodableTypeName;

export interface SyntheticGemma4Config {
  readonly nLayer: number;
  readonly nEmbd: number;
  readonly nHead: number;
  readonly nHeadKv: number;
  readonly headDimSwa: number;
  readonly headDimFull: number;
  /** Feed-forward width, one number for all layers or one per layer. */
  readonly ffn: number | readonly number[];
  /** Per layer, true = sliding-window attention. */
  readonly sliding: readonly boolean[];
  readonly slidingWindow: number;
  /** The last `sharedKvLayers` layers reuse K/V of the last non-shared layer of the same type. */
  readonly sharedKvLayers: number;
  /** embedding_length_per_layer_input (PLE width). */
  readonly pleDim: number;
  readonly ropeBaseFull: number;
  readonly ropeBaseSwa: number;
  /** Fraction of the full-layer rotary pairs that rotate (0.25 in E2B -> rope_freqs 1.0 then 1e30). */
  readonly partialRotaryFactor: number;
  readonly contextLength: number;
  readonly eps: number;
  readonly layerScalars: 'random' | 'ones';
  /** 'full': shared layers keep attn_k/attn_v/attn_k_norm (601 tensors for E2B); 'pruned': they do not (541). */
  readonly layout: 'full' | 'pruned';
  /** Write attn_qkv (rows Q, K, V) instead of attn_q/attn_k/attn_v. */
  readonly fusedQkv?: boolean;
  /** No attn_v tensors: llama.cpp then uses V = K. */
  readonly omitV?: boolean;
  readonly weightType: WeightTypeName;
  /** Per-matrix type overrides: an exact tensor name, or a regular expression matched against the whole name. */
  readonly typeOverrides?: Readonly<Record<string, WeightTypeName>>;
  readonly seed: number;
  readonly vocab: SyntheticVocab;
  /** general.name (default "synthetic-gemma4"). */
  readonly name?: string;
}

/** Tiny but structurally complete Gemma 4: both head sizes, KV sharing, double-wide MLP, PLE, partial RoPE. */
export function tinyGemma4Config(overrides: Partial<SyntheticGemma4Config> = {}): SyntheticGemma4Config {
  // S S F S F | S S F : layers 0..4 own KV (last two non-shared are sliding, full); 5..7 share it
  const sliding = [true, true, false, true, false, true, true, false];
  const sharedKvLayers = 3;
  const nLayer = 8;
  return {
    nLayer,
    nEmbd: 256,
    nHead: 2,
    nHeadKv: 1,
    headDimSwa: 256,
    headDimFull: 512,
    ffn: Array.from({ length: nLayer }, (_, i) => (i < nLayer - sharedKvLayers ? 512 : 1024)),
    sliding,
    slidingWindow: 6,
    sharedKvLayers,
    pleDim: 256,
    ropeBaseFull: 1e6,
    ropeBaseSwa: 1e4,
    partialRotaryFactor: 0.25,
    contextLength: 4096,
    eps: 1e-6,
    layerScalars: 'random',
    layout: 'full',
    weightType: 'f32',
    seed: 1234,
    vocab: buildSyntheticVocab(),
    name: 'synthetic-gemma4-tiny',
    ...overrides,
  };
}

/** Exactly the E2B hyperparameters (design/gemma4.md §1) with the synthetic vocabulary unless overridden. */
export function e2bShapesConfig(overrides: Partial<SyntheticGemma4Config> = {}): SyntheticGemma4Config {
  const nLayer = 35;
  const sharedKvLayers = 20;
  return {
    nLayer,
    nEmbd: 1536,
    nHead: 8,
    nHeadKv: 1,
    headDimSwa: 256,
    headDimFull: 512,
    ffn: Array.from({ length: nLayer }, (_, i) => (i < nLayer - sharedKvLayers ? 6144 : 12288)),
    sliding: Array.from({ length: nLayer }, (_, i) => i % 5 !== 4),
    slidingWindow: 512,
    sharedKvLayers,
    pleDim: 256,
    ropeBaseFull: 1e6,
    ropeBaseSwa: 1e4,
    partialRotaryFactor: 0.25,
    contextLength: 131072,
    eps: 1e-6,
    layerScalars: 'random',
    layout: 'full',
    weightType: 'f16',
    seed: 1234,
    vocab: buildSyntheticVocab(),
    name: 'synthetic-gemma4-e2b-shapes',
    ...overrides,
  };
}

/** Derived per-layer geometry. */
export interface Gemma4LayerShape {
  readonly index: number;
  readonly sliding: boolean;
  readonly headDim: number;
  readonly qDim: number;
  readonly kvDim: number;
  readonly ffn: number;
  /** Whether the layer computes its own K/V (index < nLayer - sharedKvLayers). */
  readonly ownsKv: boolean;
  /** The layer whose K/V this layer attends to (itself when ownsKv). */
  readonly kvSource: number;
}

function invalid(msg: string): NlaError {
  return new NlaError('ERR_NLA_INVALID_ARG', `synthetic Gemma 4 config: ${msg}`);
}

function posInt(name: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) throw invalid(`${name} must be a positive integer, got ${String(v)}`);
  return v;
}

/** Validates a config and returns its per-layer shapes. */
export function gemma4LayerShapes(c: SyntheticGemma4Config): Gemma4LayerShape[] {
  const nLayer = posInt('nLayer', c.nLayer);
  posInt('nEmbd', c.nEmbd);
  posInt('nHead', c.nHead);
  posInt('nHeadKv', c.nHeadKv);
  posInt('pleDim', c.pleDim);
  posInt('slidingWindow', c.slidingWindow);
  posInt('contextLength', c.contextLength);
  for (const k of ['headDimSwa', 'headDimFull'] as const) {
    if (posInt(k, c[k]) % 2 !== 0) throw invalid(`${k} must be even, got ${c[k]}`);
  }
  if (c.nHead % c.nHeadKv !== 0) throw invalid(`nHead (${c.nHead}) must be a multiple of nHeadKv (${c.nHeadKv})`);
  if (!Array.isArray(c.sliding) || c.sliding.length !== nLayer) throw invalid(`sliding must list ${nLayer} booleans`);
  if (!c.sliding.some((s) => s)) throw invalid('at least one layer must be sliding');
  const ffn = typeof c.ffn === 'number' ? new Array<number>(nLayer).fill(c.ffn) : [...c.ffn];
  if (ffn.length !== nLayer) throw invalid(`ffn must be a number or list ${nLayer} widths`);
  ffn.forEach((f, i) => posInt(`ffn[${i}]`, f));
  const shared = c.sharedKvLayers;
  if (!Number.isInteger(shared) || shared < 0 || shared >= nLayer) throw invalid(`sharedKvLayers must be in [0, ${nLayer - 1}], got ${shared}`);
  const nKv = nLayer - shared;
  if (shared > 0) {
    // llama.cpp maps shared sliding layers to nKv-2 and shared full layers to nKv-1 (numerics.md)
    if (nKv < 2 || c.sliding[nKv - 2] !== true || c.sliding[nKv - 1] !== false) {
      throw invalid(`with shared KV layers the last two non-shared layers (${nKv - 2}, ${nKv - 1}) must be sliding then full`);
    }
  }
  if (!(c.partialRotaryFactor >= 0 && c.partialRotaryFactor <= 1)) throw invalid(`partialRotaryFactor must be in [0, 1], got ${c.partialRotaryFactor}`);
  if (!(c.eps > 0)) throw invalid(`eps must be > 0, got ${c.eps}`);
  if (!(c.ropeBaseFull > 0) || !(c.ropeBaseSwa > 0)) throw invalid('rope bases must be > 0');
  if (c.layerScalars !== 'random' && c.layerScalars !== 'ones') throw invalid(`layerScalars must be 'random' or 'ones'`);
  if (c.layout !== 'full' && c.layout !== 'pruned') throw invalid(`layout must be 'full' or 'pruned'`);
  if (c.fusedQkv && c.omitV) throw invalid('fusedQkv and omitV cannot be combined (llama.cpp expects Q, K and V rows in attn_qkv)');
  if (!Number.isSafeInteger(c.seed)) throw invalid(`seed must be a safe integer, got ${c.seed}`);
  if (!c.vocab || c.vocab.tokens.length < 5) throw invalid('vocab is missing');
  return ffn.map((f, i) => {
    const sliding = c.sliding[i] === true;
    const headDim = sliding ? c.headDimSwa : c.headDimFull;
    const ownsKv = i < nKv;
    return {
      index: i,
      sliding,
      headDim,
      qDim: c.nHead * headDim,
      kvDim: c.nHeadKv * headDim,
      ffn: f,
      ownsKv,
      kvSource: ownsKv ? i : sliding ? nKv - 2 : nKv - 1,
    };
  });
}

// ================================================================ tensor plan

/** How a tensor's values are drawn (before encoding to its type). */
export type TensorInit =
  | { readonly kind: 'normal'; readonly std: number }
  | { readonly kind: 'uniform'; readonly lo: number; readonly hi: number }
  | { readonly kind: 'constant'; readonly value: number }
  | { readonly kind: 'ropeFreqs'; readonly rotating: number }
  /** Rows stacked from the streams of other (virtual) tensors, e.g. attn_qkv = [attn_q; attn_k; attn_v]. */
  | { readonly kind: 'stack'; readonly parts: readonly { readonly stream: string; readonly rows: number; readonly std: number }[] };

export type TensorRole = 'embedding' | 'matrix' | 'norm' | 'ropeFreqs' | 'scalar';

export interface PlannedTensor extends GgufTensorLayout {
  readonly typeName: string;
  readonly role: TensorRole;
  /** Layer index for blk.N tensors, null for global ones. */
  readonly layer: number | null;
  readonly init: TensorInit;
}

export interface SyntheticGemma4Plan {
  readonly config: SyntheticGemma4Config;
  readonly layers: readonly Gemma4LayerShape[];
  readonly kvs: readonly GgufKv[];
  readonly tensors: readonly PlannedTensor[];
  readonly tensorCount: number;
  readonly kvCount: number;
  readonly dataOffset: number;
  readonly fileSize: number;
  readonly alignment: number;
}

const LLAMA_FTYPE: Readonly<Record<WeightTypeName, number>> = {
  f32: 0,
  f16: 1,
  q4_0: 2,
  q4_1: 3,
  q8_0: 7,
  q5_0: 8,
  q5_1: 9,
  bf16: 32,
};

interface TensorSpec {
  name: string;
  ne: number[];
  role: TensorRole;
  layer: number | null;
  init: TensorInit;
}

function gemma4Kvs(c: SyntheticGemma4Config, layers: readonly Gemma4LayerShape[]): GgufKv[] {
  const v = c.vocab;
  const a = 'gemma4';
  const u32 = (key: string, value: number): GgufKv => ({ key, value: { type: 'u32', value } });
  const f32 = (key: string, value: number): GgufKv => ({ key, value: { type: 'f32', value } });
  const isQuant = !['f32', 'f16', 'bf16'].includes(c.weightType);
  const kvs: GgufKv[] = [
    { key: 'general.architecture', value: { type: 'string', value: a } },
    { key: 'general.type', value: { type: 'string', value: 'model' } },
    { key: 'general.name', value: { type: 'string', value: c.name ?? 'synthetic-gemma4' } },
    u32('general.file_type', LLAMA_FTYPE[c.weightType]),
    ...(isQuant ? [u32('general.quantization_version', 2)] : []),
    u32(`${a}.block_count`, c.nLayer),
    u32(`${a}.context_length`, c.contextLength),
    u32(`${a}.embedding_length`, c.nEmbd),
    { key: `${a}.feed_forward_length`, value: { type: 'array', itemType: 'i32', value: layers.map((l) => l.ffn) } },
    u32(`${a}.attention.head_count`, c.nHead),
    u32(`${a}.attention.head_count_kv`, c.nHeadKv),
    u32(`${a}.attention.key_length`, c.headDimFull),
    u32(`${a}.attention.value_length`, c.headDimFull),
    u32(`${a}.attention.key_length_swa`, c.headDimSwa),
    u32(`${a}.attention.value_length_swa`, c.headDimSwa),
    u32(`${a}.rope.dimension_count`, c.headDimFull),
    u32(`${a}.rope.dimension_count_swa`, c.headDimSwa),
    f32(`${a}.rope.freq_base`, c.ropeBaseFull),
    f32(`${a}.rope.freq_base_swa`, c.ropeBaseSwa),
    u32(`${a}.attention.sliding_window`, c.slidingWindow),
    { key: `${a}.attention.sliding_window_pattern`, value: { type: 'array', itemType: 'bool', value: layers.map((l) => l.sliding) } },
    u32(`${a}.attention.shared_kv_layers`, c.sharedKvLayers),
    f32(`${a}.attention.layer_norm_rms_epsilon`, c.eps),
    u32(`${a}.embedding_length_per_layer_input`, c.pleDim),
    f32(`${a}.final_logit_softcapping`, 30),
    { key: 'tokenizer.ggml.model', value: { type: 'string', value: 'gemma4' } },
    { key: 'tokenizer.ggml.tokens', value: { type: 'array', itemType: 'string', value: v.tokens } },
    { key: 'tokenizer.ggml.scores', value: { type: 'array', itemType: 'f32', value: v.scores ?? new Array<number>(v.tokens.length).fill(-1000) } },
    { key: 'tokenizer.ggml.token_type', value: { type: 'array', itemType: 'i32', value: v.types } },
    { key: 'tokenizer.ggml.merges', value: { type: 'array', itemType: 'string', value: v.merges } },
    u32('tokenizer.ggml.bos_token_id', v.bos),
    u32('tokenizer.ggml.eos_token_id', v.eos),
    u32('tokenizer.ggml.unknown_token_id', v.unk),
    u32('tokenizer.ggml.padding_token_id', v.pad),
    u32('tokenizer.ggml.mask_token_id', v.mask),
    { key: 'tokenizer.ggml.add_bos_token', value: { type: 'bool', value: true } },
    { key: 'tokenizer.ggml.add_space_prefix', value: { type: 'bool', value: false } },
  ];
  return kvs;
}

function tensorSpecs(c: SyntheticGemma4Config, layers: readonly Gemma4LayerShape[]): TensorSpec[] {
  const d = c.nEmbd;
  const nVocab = c.vocab.tokens.length;
  const lin = (inDim: number): TensorInit => ({ kind: 'normal', std: 1 / sqrt(inDim) });
  const preNorm: TensorInit = { kind: 'uniform', lo: 0.85, hi: 1.15 }; // ~1 with some spread
  const postNorm: TensorInit = { kind: 'uniform', lo: 0.17, hi: 0.23 }; // branch multipliers ~0.2
  const specs: TensorSpec[] = [
    { name: 'token_embd.weight', ne: [d, nVocab], role: 'embedding', layer: null, init: { kind: 'normal', std: 1 / sqrt(d) } },
    {
      name: 'per_layer_token_embd.weight',
      ne: [c.nLayer * c.pleDim, nVocab],
      role: 'embedding',
      layer: null,
      init: { kind: 'normal', std: 1 / sqrt(c.pleDim) },
    },
    { name: 'per_layer_model_proj.weight', ne: [d, c.nLayer * c.pleDim], role: 'matrix', layer: null, init: lin(d) },
    { name: 'per_layer_proj_norm.weight', ne: [c.pleDim], role: 'norm', layer: null, init: preNorm },
    {
      name: 'rope_freqs.weight',
      ne: [c.headDimFull / 2],
      role: 'ropeFreqs',
      layer: null,
      init: { kind: 'ropeFreqs', rotating: trunc((c.partialRotaryFactor * c.headDimFull) / 2 + 1e-9) },
    },
  ];
  for (const L of layers) {
    const p = `blk.${L.index}.`;
    const keepKv = L.ownsKv || c.layout === 'full';
    // q/k-norm multipliers w with w^2 * sqrt(headDim) = 2, so q.k logits of unit-RMS heads have std ~2
    const qkNormMid = sqrt(2 / sqrt(L.headDim));
    const qkNorm: TensorInit = { kind: 'uniform', lo: 0.9 * qkNormMid, hi: 1.1 * qkNormMid };
    const t = (name: string, ne: number[], role: TensorRole, init: TensorInit): void => {
      specs.push({ name: p + name, ne, role, layer: L.index, init });
    };
    t('attn_norm.weight', [d], 'norm', preNorm);
    if (c.fusedQkv) {
      t('attn_qkv.weight', [d, L.qDim + 2 * L.kvDim], 'matrix', {
        kind: 'stack',
        parts: [
          { stream: `${p}attn_q.weight`, rows: L.qDim, std: 1 / sqrt(d) },
          { stream: `${p}attn_k.weight`, rows: L.kvDim, std: 1 / sqrt(d) },
          { stream: `${p}attn_v.weight`, rows: L.kvDim, std: 1 / sqrt(d) },
        ],
      });
    } else {
      t('attn_q.weight', [d, L.qDim], 'matrix', lin(d));
      if (keepKv) t('attn_k.weight', [d, L.kvDim], 'matrix', lin(d));
      if (keepKv && !c.omitV) t('attn_v.weight', [d, L.kvDim], 'matrix', lin(d));
    }
    t('attn_output.weight', [L.qDim, d], 'matrix', lin(L.qDim));
    t('attn_q_norm.weight', [L.headDim], 'norm', qkNorm);
    if (keepKv) t('attn_k_norm.weight', [L.headDim], 'norm', qkNorm);
    t('post_attention_norm.weight', [d], 'norm', postNorm);
    t('ffn_norm.weight', [d], 'norm', preNorm);
    t('ffn_gate.weight', [d, L.ffn], 'matrix', lin(d));
    t('ffn_up.weight', [d, L.ffn], 'matrix', lin(d));
    t('ffn_down.weight', [L.ffn, d], 'matrix', lin(L.ffn));
    t('post_ffw_norm.weight', [d], 'norm', postNorm);
    t('inp_gate.weight', [d, c.pleDim], 'matrix', lin(d));
    t('proj.weight', [c.pleDim, d], 'matrix', lin(c.pleDim));
    t('post_norm.weight', [d], 'norm', postNorm);
    t('layer_output_scale.weight', [1], 'scalar', c.layerScalars === 'random' ? { kind: 'uniform', lo: 0.9, hi: 1.0 } : { kind: 'constant', value: 1 });
  }
  specs.push({ name: 'output_norm.weight', ne: [d], role: 'norm', layer: null, init: preNorm });
  return specs;
}

function compileOverrides(c: SyntheticGemma4Config, specs: readonly TensorSpec[]): (name: string) => WeightTypeName | undefined {
  const entries = Object.entries(c.typeOverrides ?? {});
  const names = new Set(specs.map((s) => s.name));
  const byRole = new Map(specs.map((s) => [s.name, s.role]));
  const patterns: [RegExp, WeightTypeName][] = [];
  const exact = new Map<string, WeightTypeName>();
  for (const [key, type] of entries) {
    ggmlTypeFromName(type); // validates the type name
    if (names.has(key)) {
      const role = byRole.get(key);
      if (role !== 'matrix' && role !== 'embedding') throw invalid(`typeOverrides['${key}']: norms, rope_freqs and layer_output_scale are always f32`);
      exact.set(key, type);
      continue;
    }
    try {
      patterns.push([new RegExp(`^(?:${key})$`), type]);
    } catch (e) {
      throw invalid(`typeOverrides key '${key}' is neither a tensor name nor a valid regular expression: ${(e as Error).message}`);
    }
  }
  return (name) => exact.get(name) ?? patterns.find(([re]) => re.test(name))?.[1];
}

/** Everything about the synthetic file except the tensor values: keys, tensors, types, sizes, offsets. */
export function planSyntheticGemma4(config: SyntheticGemma4Config): SyntheticGemma4Plan {
  const layers = gemma4LayerShapes(config);
  ggmlTypeFromName(config.weightType);
  const specs = tensorSpecs(config, layers);
  const override = compileOverrides(config, specs);
  const typed = specs.map((s) => {
    let type = GgmlType.F32;
    if (s.role === 'matrix' || s.role === 'embedding') {
      type = ggmlTypeFromName(override(s.name) ?? config.weightType);
      const bs = ggmlTypeTraits(type).blockSize;
      if (s.ne[0]! % bs !== 0) throw invalid(`${s.name}: row length ${s.ne[0]} is not a multiple of the ${ggmlTypeName(type)} block size ${bs}`);
    }
    return { ...s, type };
  });
  const kvs = gemma4Kvs(config, layers);
  const header = encodeGgufHeader(kvs, typed);
  const tensors: PlannedTensor[] = header.tensors.map((l, i) => ({
    ...l,
    typeName: ggmlTypeName(l.type),
    role: typed[i]!.role,
    layer: typed[i]!.layer,
    init: typed[i]!.init,
  }));
  return {
    config,
    layers,
    kvs,
    tensors,
    tensorCount: tensors.length,
    kvCount: header.kvCount,
    dataOffset: header.dataOffset,
    fileSize: header.fileSize,
    alignment: header.alignment,
  };
}

// ================================================================ values

function numElements(ne: readonly number[]): number {
  return ne.reduce((a, b) => a * b, 1);
}

/**
 * The fp32 values of one planned tensor, in row chunks (each a whole number of rows of ne[0]),
 * before encoding to the tensor's type. Deterministic in (config.seed, tensor name).
 */
export function* tensorValueChunks(seed: number, t: Pick<PlannedTensor, 'name' | 'ne' | 'init'>, maxChunkElements = 1 << 20): Generator<Float32Array> {
  const rowLen = t.ne[0]!;
  const rows = numElements(t.ne) / rowLen;
  const rowsPerChunk = max(1, floor(maxChunkElements / rowLen));
  const init = t.init;
  switch (init.kind) {
    case 'ropeFreqs': {
      const out = new Float32Array(numElements(t.ne));
      for (let i = 0; i < out.length; i++) out[i] = i < init.rotating ? 1 : 1e30;
      yield out;
      return;
    }
    case 'constant':
      yield new Float32Array(numElements(t.ne)).fill(init.value);
      return;
    case 'normal':
    case 'uniform': {
      const rng = new RandomStream(seed, t.name);
      for (let r = 0; r < rows; r += rowsPerChunk) {
        const out = new Float32Array(min(rowsPerChunk, rows - r) * rowLen);
        if (init.kind === 'normal') rng.fillNormal(out, init.std);
        else rng.fillUniform(out, init.lo, init.hi);
        yield out;
      }
      return;
    }
    case 'stack': {
      for (const part of init.parts) {
        const rng = new RandomStream(seed, part.stream);
        for (let r = 0; r < part.rows; r += rowsPerChunk) {
          yield rng.fillNormal(new Float32Array(min(rowsPerChunk, part.rows - r) * rowLen), part.std);
        }
      }
      return;
    }
  }
}

/**
 * The fp32 values the generator draws for a tensor (before quantization), for references in tests.
 * Also answers for the virtual parts of a fused attn_qkv (e.g. blk.0.attn_q.weight with fusedQkv).
 */
export function syntheticTensorValues(config: SyntheticGemma4Config, name: string): Float32Array {
  const plan = planSyntheticGemma4(config);
  let t: Pick<PlannedTensor, 'name' | 'ne' | 'init'> | undefined = plan.tensors.find((x) => x.name === name);
  if (!t) {
    const fused = plan.tensors.find((x) => x.init.kind === 'stack' && x.init.parts.some((p) => p.stream === name));
    const part = fused?.init.kind === 'stack' ? fused.init.parts.find((p) => p.stream === name) : undefined;
    if (fused && part) t = { name, ne: [fused.ne[0]!, part.rows], init: { kind: 'normal', std: part.std } };
  }
  if (!t) throw new NlaError('ERR_NLA_INVALID_ARG', `the synthetic model has no tensor '${name}'`);
  const out = new Float32Array(numElements(t.ne));
  let off = 0;
  for (const chunk of tensorValueChunks(config.seed, t)) {
    out.set(chunk, off);
    off += chunk.length;
  }
  return out;
}

// ================================================================ writer

export interface WriteProgress {
  readonly tensorIndex: number;
  readonly tensorCount: number;
  readonly tensorName: string;
  readonly bytesWritten: number;
  readonly totalBytes: number;
}

export interface SyntheticGemma4Summary {
  readonly path: string;
  readonly tensorCount: number;
  readonly kvCount: number;
  readonly fileSize: number;
  readonly tensors: readonly { readonly name: string; readonly ne: readonly number[]; readonly type: string; readonly nbytes: number }[];
}

/** Stream a synthetic Gemma 4 GGUF to `path` (tensor by tensor, never the whole file in memory). */
export function writeSyntheticGemma4(
  path: string,
  config: SyntheticGemma4Config,
  options: { onProgress?: (p: WriteProgress) => void } = {},
): SyntheticGemma4Summary {
  const plan = planSyntheticGemma4(config);
  const writer = new GgufWriter(path, plan.kvs, plan.tensors);
  let bytesWritten = writer.dataOffset;
  try {
    plan.tensors.forEach((t, i) => {
      for (const chunk of tensorValueChunks(config.seed, t)) {
        const bytes = quantize(t.type, chunk);
        writer.writeTensorData(bytes);
        bytesWritten += bytes.length;
      }
      options.onProgress?.({ tensorIndex: i, tensorCount: plan.tensorCount, tensorName: t.name, bytesWritten, totalBytes: plan.fileSize });
    });
    writer.finish();
  } catch (e) {
    writer.abort();
    throw e;
  }
  return {
    path,
    tensorCount: plan.tensorCount,
    kvCount: plan.kvCount,
    fileSize: plan.fileSize,
    tensors: plan.tensors.map((t) => ({ name: t.name, ne: t.ne, type: t.typeName, nbytes: t.nbytes })),
  };
}


