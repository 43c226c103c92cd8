/**
 * The public Tokenizer (Tokenizer.fromGGUF) on the real Gemma-4 vocabulary (llama.cpp's
 * models/ggml-vocab-gemma-4.gguf, 262 144 tokens, 514 906 merges):
 *  - Hugging Face's own tokenizations of 46 tricky strings (the .inp/.out files beside the vocab), exactly;
 *  - the test vectors of design/gemma4.md §6;
 *  - BOS (id 2) prepended by default, never an EOS;
 *  - decode(encode(s)) === s;
 *  - exact agreement with llama.cpp's tokenizer (v0.5.0) on 3000 generated strings (BOS on, special tokens
 *    parsed: the AR prompt's settings). No tolerance: tokenization is discrete, and the corpus avoids the
 *    documented HF/llama.cpp divergences (tokenizerCorpus.ts), so every id must agree;
 *  - typed errors for a non-string input, a missing file and a GGUF whose tokenizer is not gemma4.
 * Skipped when scripts/setup-reference.sh has not been run (no vocab, no llama.cpp).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Tokenizer } from '../src';
import { planSyntheticGemma4, tinyGemma4Config, writeGguf, type GgufKv } from '../tools/synthetic';
import { loadHfTokenizerCases, referenceAvailable, tokenizeRef, vocabGemma4Path } from './helpers/llamaRef';
import { makeTokenizerCorpus } from './helpers/tokenizerCorpus';
import { expectNlaError as expectCode } from './helpers/errors';

const ref = referenceAvailable();
const describeRef = ref ? describe : describe.skip;
if (!ref) console.warn('llama.cpp reference not built (scripts/setup-reference.sh): tokenizer tests on the real vocab skipped');

const show = (s: string): string => JSON.stringify(s.length > 60 ? s.slice(0, 60) + '…' : s);

describeRef('Tokenizer on the real Gemma-4 vocabulary', () => {
  let tok: Tokenizer;
  beforeAll(async () => {
    tok = await Tokenizer.fromGGUF(vocabGemma4Path());
  });

  test('vocabulary facts: 262144 tokens, BOS 2, EOS 1', () => {
    expect({ vocabSize: tok.vocabSize, bos: tok.bos, eos: tok.eos }).toEqual({ vocabSize: 262144, bos: 2, eos: 1 });
  });

  test("Hugging Face's 46 reference tokenizations, exactly (no BOS)", () => {
    const cases = loadHfTokenizerCases();
    expect(cases).toHaveLength(46);
    const wrong = cases
      .map((c, i) => ({ i, text: c.text, want: c.ids, got: Array.from(tok.encode(c.text, { bos: false })) }))
      .filter((r) => r.got.join(' ') !== r.want.join(' '));
    if (wrong.length) {
      throw new Error(
        `${wrong.length}/46 HF cases differ:\n` +
          wrong.map((w) => `  #${w.i} ${show(w.text)}\n    want ${w.want.join(' ')}\n    got  ${w.got.join(' ')}`).join('\n'),
      );
    }
  });

  test('the test vectors of design/gemma4.md §6 (no BOS)', () => {
    const vectors: [string, number[]][] = [
      ['Hello world', [9259, 1902]],
      [' Hello world', [26352, 1902]],
      [' ', [236743]],
      ['  ', [138]],
      ['  Hello', [138, 9259]],
      ['\n', [107]],
      ['\n\n', [108]],
      ['\t\n', [255968, 107]],
      ['    Hello\n    Hello', [140, 9259, 107, 140, 9259]],
      ['333', [236800, 236800, 236800]],
      ['w048 7tuijk dsdfhu', [236765, 236771, 236812, 236828, 236743, 236832, 11372, 12065, 31806, 3405, 9360]],
      [' this is 🦙.cpp', [672, 563, 236743, 478, 397, 404, 391, 236761, 12362]],
      ['Cửa Việt', [236780, 29719, 33154]],
      ['\n'.repeat(40), [137, 115]],
    ];
    const wrong = vectors
      .map(([text, want]) => ({ text, want, got: Array.from(tok.encode(text, { bos: false })) }))
      .filter((r) => r.got.join(' ') !== r.want.join(' '));
    expect(wrong.map((w) => `${show(w.text)}: want ${w.want.join(' ')}, got ${w.got.join(' ')}`)).toEqual([]);
  });

  test('BOS is prepended once by default, never an EOS; special tokens are parsed by default', () => {
    expect(Array.from(tok.encode('Hello world'))).toEqual([2, 9259, 1902]);
    expect(Array.from(tok.encode(''))).toEqual([2]);
    expect(Array.from(tok.encode('', { bos: false }))).toEqual([]);
    // '<bos>' in the text is the control token (HF parses special tokens in text); BOS is still prepended once
    expect(Array.from(tok.encode('<bos>Hello world'))).toEqual([2, 2, 9259, 1902]);
    expect(Array.from(tok.encode('<|turn>user'))).toEqual([2, 105, 2364]);
    // with special parsing off the control token is plain text
    expect(Array.from(tok.encode('<|turn>', { bos: false, special: false }))).not.toContain(105);
  });

  test('decode(encode(s)) === s for the HF cases and 300 corpus strings', () => {
    const strings = [...loadHfTokenizerCases().map((c) => c.text), ...makeTokenizerCorpus(99, 300)];
    const bad: string[] = [];
    for (const s of strings) {
      // control tokens (<bos>, <|turn>, …) are dropped unless rendered: render them to get the text back
      const back = tok.decode(tok.encode(s, { bos: false }), { special: true });
      if (back !== s) bad.push(`${show(s)} → ${show(back)}`);
    }
    expect(bad).toEqual([]);
    // the default decode drops the BOS (a control token) and keeps everything else
    expect(tok.decode(tok.encode('Hello world'))).toBe('Hello world');
    expect(tok.decode(tok.encode('Hello world'), { special: true })).toBe('<bos>Hello world');
    expect(tok.decode([9259, 1902])).toBe('Hello world');
  });

  test("agrees exactly with llama.cpp's tokenizer on 3000 generated strings (BOS, special tokens parsed)", async () => {
    const corpus = makeTokenizerCorpus(20240611, 3000);
    const theirs = await tokenizeRef(vocabGemma4Path(), corpus, { bos: true, special: true });
    let tokens = 0;
    const diffs: string[] = [];
    corpus.forEach((s, i) => {
      const ours = Array.from(tok.encode(s));
      tokens += theirs[i].length;
      if (ours.join(' ') !== theirs[i].join(' ')) {
        let k = 0;
        while (k < ours.length && ours[k] === theirs[i][k]) k++;
        diffs.push(`#${i} ${show(s)}: first difference at token ${k}: ours ${ours.slice(k, k + 5).join(' ')} vs llama.cpp ${theirs[i].slice(k, k + 5).join(' ')}`);
      }
    });
    if (diffs.length) throw new Error(`${diffs.length}/3000 strings tokenize differently:\n${diffs.slice(0, 20).join('\n')}`);
    expect(tokens).toBeGreaterThan(100_000); // the corpus really exercised the tokenizer
  });

  test('non-string input → ERR_NLA_INVALID_ARG', async () => {
    for (const bad of [42, null, undefined, { toString: () => 'x' }, ['a']]) {
      await expectCode(() => tok.encode(bad as unknown as string), 'ERR_NLA_INVALID_ARG', /must be a string/);
    }
    await expectCode(() => tok.decode('abc' as unknown as number[]), 'ERR_NLA_INVALID_ARG');
    await expectCode(() => tok.encode('x', { bos: 'yes' } as never), 'ERR_NLA_INVALID_ARG', /bos/);
  });
});

describe('Tokenizer.fromGGUF errors', () => {
  let tmp: string;
  beforeAll(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'nla-tok-'));
  });
  afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

  /** A vocab-only GGUF (tokenizer.* and general.* keys of the synthetic model, no tensors). */
  function vocabOnly(file: string, edit: (kvs: GgufKv[]) => GgufKv[] = (k) => k): string {
    const kvs = planSyntheticGemma4(tinyGemma4Config()).kvs.filter((k) => k.key.startsWith('tokenizer.') || k.key.startsWith('general.'));
    writeGguf(path.join(tmp, file), edit([...kvs]), []);
    return path.join(tmp, file);
  }

  test('a vocab-only GGUF with tokenizer.ggml.model = gemma4 loads (control for the next test)', async () => {
    const t = await Tokenizer.fromGGUF(vocabOnly('gemma4-vocab.gguf'));
    expect(t.vocabSize).toBe(tinyGemma4Config().vocab.tokens.length);
    expect(t.encode('')[0]).toBe(2);
  });

  test('tokenizer.ggml.model != gemma4 → ERR_NLA_TOKENIZER naming the model', async () => {
    const file = vocabOnly('llama-vocab.gguf', (kvs) =>
      kvs.map((k) => (k.key === 'tokenizer.ggml.model' ? { key: k.key, value: { type: 'string', value: 'llama' } } : k)),
    );
    await expectCode(() => Tokenizer.fromGGUF(file), 'ERR_NLA_TOKENIZER', /"llama"/);
  });

  test('no tokenizer.ggml.model key → ERR_NLA_TOKENIZER', async () => {
    const file = vocabOnly('no-model-key.gguf', (kvs) => kvs.filter((k) => k.key !== 'tokenizer.ggml.model'));
    await expectCode(() => Tokenizer.fromGGUF(file), 'ERR_NLA_TOKENIZER', /tokenizer\.ggml\.model/);
  });

  test('missing file → ERR_NLA_IO naming the path', async () => {
    const missing = path.join(tmp, 'does-not-exist.gguf');
    await expectCode(() => Tokenizer.fromGGUF(missing), 'ERR_NLA_IO', /does-not-exist\.gguf/);
  });

  test('a directory → ERR_NLA_IO', async () => {
    await expectCode(() => Tokenizer.fromGGUF(tmp), 'ERR_NLA_IO');
  });

  test('non-string or empty path → ERR_NLA_INVALID_ARG', async () => {
    await expectCode(() => Tokenizer.fromGGUF(42 as unknown as string), 'ERR_NLA_INVALID_ARG');
    await expectCode(() => Tokenizer.fromGGUF(''), 'ERR_NLA_INVALID_ARG');
  });
});
