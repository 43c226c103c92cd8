/**
 * Writes the fuzzers' seed corpora (test/fuzz/corpus/<target>/, committed, a few KB each) and the small synthetic
 * vocabulary the tokenizer harness falls back to when the real Gemma-4 one is absent (.cache/fuzz/vocab.gguf).
 *
 *   npx tsc -p test/fuzz/tsconfig.json && node .cache/fuzz/js/test/fuzz/make-corpus.js [--vocab-only]
 *
 * Seeds are well-formed files (from the test fixtures and the synthetic generator) so that mutations start deep
 * inside each format.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ZipArchive } from '../../src/formats/zip';
import { planSyntheticGemma4, tinyGemma4Config, vocabFromArrays, writeGguf, writeSyntheticGemma4, buildSyntheticVocab, TokenType } from '../../tools/synthetic';
import { writeSafetensors } from '../../tools/formats/safetensors-writer';
import { deflated, deflatedZip, repeatedRefPickle, stored, zeroBomb } from '../helpers/hostile-files';

const ROOT = path.resolve(__dirname, '..', '..', '..', '..', '..'); // .cache/fuzz/js/test/fuzz -> the repository
const CORPUS = path.join(ROOT, 'test', 'fuzz', 'corpus');
const FIXTURES = path.join(ROOT, 'test', 'fixtures', 'torch');

function put(target: string, name: string, data: Uint8Array | string): void {
  const dir = path.join(CORPUS, target);
  fs.mkdirSync(dir, { recursive: true });
  // the repository ignores *.gguf / *.safetensors / *.pt: seeds keep their kind in the name but not as the extension
  fs.writeFileSync(path.join(dir, name.replace(/\.(gguf|safetensors|pt)$/, '-$1.seed')), data);
}

/** A vocabulary of a few hundred tokens: controls, bytes, ASCII, ▁ words and the merges that make them. */
function microVocab(): ReturnType<typeof vocabFromArrays> {
  const tokens = ['<pad>', '<eos>', '<bos>', '<unk>', '<mask>', '<|turn>', '<turn|>', '<|"|>', '\n', '\n\n', '▁'];
  const types = [3, 3, 3, 3, 3, 3, 3, 4, 1, 1, 1];
  for (let b = 0; b < 256; b++) {
    tokens.push(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`);
    types.push(TokenType.BYTE);
  }
  for (let c = 0x21; c <= 0x7e; c++) {
    tokens.push(String.fromCharCode(c));
    types.push(1);
  }
  const merges: string[] = [];
  const word = (w: string): void => {
    let acc = w[0]!;
    for (const ch of w.slice(1)) {
      merges.push(`${acc} ${ch}`);
      acc += ch;
      if (!tokens.includes(acc)) {
        tokens.push(acc);
        types.push(1);
      }
    }
  };
  for (const w of ['▁the', '▁text', '▁is', '▁about', '▁tides', 'th', 'in', '▁a', '<text>', '</text>', '▁summary']) word(w);
  merges.push('\n \n');
  return vocabFromArrays(tokens, types, merges);
}

function ggufSeeds(): void {
  const vocab = microVocab();
  const config = tinyGemma4Config({
    nLayer: 2, nEmbd: 16, nHead: 1, nHeadKv: 1, headDimSwa: 8, headDimFull: 16, ffn: [32, 32], sliding: [true, false],
    slidingWindow: 4, sharedKvLayers: 0, pleDim: 8, contextLength: 64, weightType: 'f16', seed: 7, vocab, name: 'fuzz-seed',
  });
  const tmp = path.join(ROOT, '.cache', 'fuzz', 'seed-model.gguf');
  fs.mkdirSync(path.dirname(tmp), { recursive: true });
  writeSyntheticGemma4(tmp, config);
  put('gguf', 'micro-f16.gguf', fs.readFileSync(tmp));
  // a vocab-only file (metadata, no tensors): the tokenizer's and the reader's path without a model
  const kvs = planSyntheticGemma4(config).kvs.filter((k) => k.key.startsWith('tokenizer.') || k.key.startsWith('general.'));
  const vocabOnly = path.join(ROOT, '.cache', 'fuzz', 'seed-vocab.gguf');
  writeGguf(vocabOnly, kvs, []);
  put('gguf', 'vocab-only.gguf', fs.readFileSync(vocabOnly));
}

/** The tokenizer harness's vocabulary when the real one is not there: the generator's 4096-token vocab. */
export function writeSyntheticVocab(file: string): void {
  const config = tinyGemma4Config({ vocab: buildSyntheticVocab() });
  const kvs = planSyntheticGemma4(config).kvs.filter((k) => k.key.startsWith('tokenizer.') || k.key.startsWith('general.'));
  fs.mkdirSync(path.dirname(file), { recursive: true });
  writeGguf(file, kvs, []);
}

function f32(n: number, start = 0.01): Float32Array {
  return Float32Array.from({ length: n }, (_, i) => start + i * 0.01);
}

function peftSeeds(): void {
  const pre = 'base_model.model.model.language_model.layers.';
  const st = writeSafetensors(
    {
      [`${pre}0.self_attn.q_proj.lora_A.weight`]: { dtype: 'F32', shape: [2, 4], data: f32(8) },
      [`${pre}0.self_attn.q_proj.lora_B.weight`]: { dtype: 'F32', shape: [6, 2], data: f32(12) },
      [`${pre}1.self_attn.v_proj.lora_A.weight`]: { dtype: 'F16', shape: [2, 4], data: f32(8) },
      [`${pre}1.self_attn.v_proj.lora_B.weight`]: { dtype: 'BF16', shape: [6, 2], data: f32(12) },
    },
    { format: 'pt' },
  );
  put('safetensors', 'lora-small.safetensors', st);
  put('safetensors', 'head-2x2.safetensors', writeSafetensors({ weight: { dtype: 'F32', shape: [2, 2], data: f32(4) }, bias: { dtype: 'F16', shape: [2], data: f32(2) } }));
  const configs = {
    ar: {
      peft_type: 'LORA', r: 2, lora_alpha: 16, target_modules: 'model.language_model.layers.\\d+.self_attn.(q|k|v|o)_proj',
      rank_pattern: { 'layers\\.1\\.self_attn\\.v_proj': 2 }, alpha_pattern: { q_proj: 8 }, bias: 'none', use_rslora: false,
      task_type: 'CAUSAL_LM', layers_to_transform: null, exclude_modules: null,
    },
    list: { peft_type: 'LORA', r: 2, lora_alpha: 4, target_modules: ['q_proj', 'v_proj'], exclude_modules: ['k_proj'], layers_to_transform: [0, 1], use_rslora: true },
  };
  for (const [name, cfg] of Object.entries(configs)) {
    const json = Buffer.from(JSON.stringify(cfg, null, 1));
    const len = Buffer.alloc(4);
    len.writeUInt32LE(json.length);
    put('peft', `${name}.bin`, Buffer.concat([len, json, st]));
    put('json', `config-${name}.json`, json);
  }
  const hdr = Number(st.readBigUInt64LE(0));
  put('json', 'safetensors-header.json', st.subarray(8, 8 + hdr));
  put('json', 'values.json', '{"a":[1,-2.5e-3,true,false,null,"\\u00e9\\ud83d\\ude00\\n"],"b":{"c":{}},"d":[]}');
}

function regexSeeds(): void {
  const seeds: Record<string, string> = {
    ar: 'model.language_model.layers.\\d+.self_attn.(q|k|v|o)_proj\nmodel.language_model.layers.7.self_attn.k_proj',
    key: 'layers\\.1[0-9]?\\.(self_attn|mlp)\\.[a-z]+_proj$\nmodel.layers.12.mlp.up_proj',
    classes: '^[^x]{2,5}(?:[\\w.]+)*?\\b(?P<p>q|k)_proj\\Z\nmodel.q_proj',
    counted: '(a|b){3,}c{,2}d{2}\\x41[\\d\\s\\-]\naaabdd',
    backtrack: '(.*.*)*(.*.*)*z\nmodel.language_model.layers.3.self_attn.q_proj',
  };
  for (const [name, s] of Object.entries(seeds)) put('regex', `${name}.txt`, s);
}

function tokenizerSeeds(): void {
  const seeds: Record<string, string> = {
    prompt: 'Summary of the following text: <text><explanation>The text is about tides.</explanation></text> <summary>',
    specials: '<bos><|turn>user\n<|"|>hi<turn|><eos><unk><mask>',
    unicode: 'naïve café — 東京 😀 \u0000\u00ff\ud7ff \t\r\n\n\n  spaces   ',
    newlines: '\n\n\n\n\na\n \n',
    bytes: Buffer.from([0xc3, 0x28, 0xa0, 0xa1, 0xe2, 0x28, 0xa1, 0xf0, 0x90, 0x28, 0xbc, 0xff, 0xfe]).toString('latin1'),
  };
  for (const [name, s] of Object.entries(seeds)) put('tokenizer', `${name}.txt`, name === 'bytes' ? Buffer.from(s, 'latin1') : s);
}

function tsSeeds(): void {
  const pts = ['linear_8x8_params.pt', 'linear_8x8_fp16.pt', 'linear_4x3_bf16_params.pt', 'linear_4x3_fp64.pt', 'views_offset.pt', 'transposed.pt', 'malicious.pt'];
  for (const f of pts) put('torch', f, fs.readFileSync(path.join(FIXTURES, f)));
  for (const f of ['linear_8x8_params.pt', 'deflated.zip', 'zip64.zip']) put('zip', f, fs.readFileSync(path.join(FIXTURES, f)));
  for (const f of ['linear_8x8_params.pt', 'views_offset.pt', 'malicious.pt']) {
    const zip = ZipArchive.open(fs.readFileSync(path.join(FIXTURES, f)));
    const pkl = zip.entries.find((e) => e.name.endsWith('/data.pkl'))!;
    put('pickle', f.replace(/\.pt$/, '.pkl'), zip.read(pkl));
  }
}

/** Inputs that crashed, hung or exhausted memory before their fixes (the review's findings), for the replay test. */
function regressionSeeds(): void {
  const put2 = (target: string, name: string, data: Uint8Array | string): void => {
    const dir = path.join(ROOT, 'test', 'fuzz', 'regressions', target);
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, name), data);
  };
  // std::regex recursed once per group: 20 000 nested groups overflowed the stack (SIGSEGV)
  const deep = '('.repeat(20_000) + 'q_proj' + ')'.repeat(20_000);
  put2('regex', 'deep-nesting.txt', deep);
  // exponential backtracking in std::regex: load() never resolved
  put2('regex', 'backtracking.txt', '(.*.*)*(.*.*)*z\nmodel.language_model.layers.3.self_attn.q_proj');
  const st = fs.readFileSync(path.join(CORPUS, 'peft', 'ar.bin'));
  const cfgLen = st.readUInt32LE(0);
  const weights = st.subarray(4 + cfgLen);
  const withConfig = (cfg: object): Buffer => {
    const json = Buffer.from(JSON.stringify(cfg));
    const len = Buffer.alloc(4);
    len.writeUInt32LE(json.length);
    return Buffer.concat([len, json, weights]);
  };
  put2('peft', 'deep-nesting-target.bin', withConfig({ peft_type: 'LORA', r: 2, lora_alpha: 16, target_modules: deep }));
  put2('peft', 'backtracking-rank-key.bin', withConfig({ peft_type: 'LORA', r: 2, lora_alpha: 16, rank_pattern: { '(.*.*)*(.*.*)*z': 2 } }));
  put2('peft', 'alpha-1e308.bin', withConfig({ peft_type: 'LORA', r: 2, lora_alpha: 1e308 }));
  // one 1024 x 1024 tensor named 1000 times (a 4 GB state_dict from ~20 KB): materialized before any check
  const repeated = deflatedZip([
    stored('archive/data.pkl', repeatedRefPickle(Array.from({ length: 1000 }, (_, i) => `w${i}`), 1024, 1024)),
    deflated('archive/data/0', Buffer.alloc(1024 * 1024 * 4)),
  ]);
  put2('torch', 'repeated-references', repeated);
  // a storage and a pickle that inflate to 64 MiB each (the targets allow 16 MiB): inflated before any check
  const bomb = zeroBomb(64 << 20);
  put2('torch', 'storage-bomb', deflatedZip([stored('archive/data.pkl', repeatedRefPickle(['weight', 'bias'], 8, 8)), { name: 'archive/data/0', ...bomb }]));
  put2('zip', 'entry-bomb', deflatedZip([{ name: 'archive/data.pkl', ...bomb }]));
}

if (require.main !== module) {
  // imported (the replay test uses writeSyntheticVocab)
} else if (process.argv.includes('--vocab-only')) {
  writeSyntheticVocab(path.join(ROOT, '.cache', 'fuzz', 'vocab.gguf'));
} else {
  ggufSeeds();
  peftSeeds();
  regexSeeds();
  tokenizerSeeds();
  tsSeeds();
  regressionSeeds();
  writeSyntheticVocab(path.join(ROOT, '.cache', 'fuzz', 'vocab.gguf'));
  console.log(`corpora written to ${CORPUS}`);
}
