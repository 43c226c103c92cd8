#!/usr/bin/env node
/**
 * nla-ar command line: demo | reconstruct | verbalize | round-trip | tokenize | info | pull | inspect | serve | eval | worker.
 * Human-readable output by default, --json for machines; progress on stderr for long work.
 */
import * as fs from 'node:fs';
import { parseArgs } from 'node:util';
import { NlaError } from './errors';
import { Reconstructor } from './reconstructor';
import { Tokenizer } from './tokenizer';
import { demoFiles } from './demo';
import { Autoencoder } from './autoencoder';
import { cmdAutoencode, cmdVerbalize } from './commands/verbalize';
import { fmtVector as fmt, int, need, progress } from './commands/util';
import { crossRowIdentity } from './controls';
import { parseHfRepoUri, resolveModelPath, resolvePretrained, PRETRAINED_FILES } from './hub';
import { roundTripReport } from './report';
import { UsageError } from './commands/usage';
import { progressPrinter, pull } from './commands/pull';
import { inspect } from './commands/inspect';

const USAGE = `nla-ar — the Gemma-4-E2B Natural Language Autoencoder (verbalizer + reconstructor)

Usage:
  nla-ar demo [--json]                         the full round trip on the shipped synthetic model (no downloads)
  nla-ar reconstruct --model M.gguf --adapter DIR [--head H] [--layer 17] [--threads N] [--device auto|cpu|cuda]
                     (EXPLANATION... | --file F)  [--json]
                     F: one explanation per line, or JSON lines of strings / {"explanation": ...}
  nla-ar verbalize   --model M.gguf --av DIR (--text T [--layer 23] | --file F | --activations F.jsonl)
                     [--max-tokens 120] [--temperature 0] [--seed N] [--json]
                     activations: JSON lines of number arrays or {"activation": [...]}
  nla-ar round-trip  --model M.gguf --av DIR --ar DIR (--text T | --file F) [--activation-layer 23] [--json]
                     the whole loop: text → activation → AV explanation → AR reconstruction → cosine
  nla-ar round-trip  --model M.gguf --adapter DIR --file F.jsonl [--mean MEAN.json] [--json]
                     AR only; F: JSON lines {"activation": [...1536 numbers], "explanation": "..."}
  nla-ar round-trip  --model M.gguf --adapter DIR --text "source text" --explanation "..." [--activation-layer 23]
                     [--html report.html] [--controls]   an HTML report (table + chart; cross-row identity for
                     2+ items; --controls adds the empty/gibberish baselines)
  nla-ar tokenize    --model M.gguf (TEXT | --file F) [--no-bos] [--json]
  nla-ar info        --model M.gguf [--adapter DIR] [--json]
  nla-ar serve       --model M.gguf --ar DIR [--av DIR] [--port 8080] [--api-key K] ...   HTTP server (AR, and the AV with --av) with dynamic batching (serve --help)
  nla-ar eval        --model M.gguf --ar DIR --data D.parquet|D.jsonl --out R.jsonl [--mode ar|controls|round-trip] [--queue redis://…]  (eval --help)
  nla-ar worker      --queue redis://HOST:PORT/DB --model M.gguf --ar DIR   runs eval shards from the queue (worker --help)
  nla-ar pull        OWNER/REPO[:FILE] | hf:OWNER/REPO[@REV]/FILE  [--revision REV] [--offline] [--json]
                     download into the Hugging Face cache (HF_HOME, HF_TOKEN, HF_ENDPOINT) and print the path
  nla-ar inspect     [--json]   platform, native variants found, CUDA probe, CPU kernels

--model also takes hf:OWNER/REPO[@REV]/FILE.gguf and --adapter hf:OWNER/REPO[@REV] (downloaded on first use).

Exit codes: 0 ok, 1 error (the message names the NlaError code), 2 bad usage.`;

const options = {
  model: { type: 'string' },
  adapter: { type: 'string' },
  av: { type: 'string' },
  ar: { type: 'string' },
  activations: { type: 'string' },
  'max-tokens': { type: 'string' },
  temperature: { type: 'string' },
  seed: { type: 'string' },
  head: { type: 'string' },
  layer: { type: 'string' },
  'activation-layer': { type: 'string' },
  threads: { type: 'string' },
  device: { type: 'string' },
  file: { type: 'string' },
  text: { type: 'string' },
  explanation: { type: 'string' },
  mean: { type: 'string' },
  html: { type: 'string' },
  controls: { type: 'boolean', default: false },
  revision: { type: 'string' },
  offline: { type: 'boolean', default: false },
  json: { type: 'boolean', default: false },
  'no-bos': { type: 'boolean', default: false },
  help: { type: 'boolean', short: 'h', default: false },
} as const;

type Values = ReturnType<typeof parseArgs<{ options: typeof options; allowPositionals: true }>>['values'];

function readExplanations(file: string): string[] {
  const lines = fs.readFileSync(file, 'utf8').split('\n').filter((l) => l.trim().length > 0);
  return lines.map((l) => {
    const t = l.trim();
    if (t.startsWith('"') || t.startsWith('{')) {
      const v = JSON.parse(t) as unknown;
      if (typeof v === 'string') return v;
      if (v && typeof v === 'object' && typeof (v as { explanation?: unknown }).explanation === 'string') return (v as { explanation: string }).explanation;
    }
    return l;
  });
}

async function open(values: Values): Promise<Reconstructor> {
  // hf: URIs are resolved (downloaded into the Hugging Face cache when needed) before anything is loaded
  const hub = { ...(values.offline ? { offline: true } : {}), ...(values.json ? {} : { onProgress: progressPrinter() }) };
  const model = await resolveModelPath(need(values.model, 'model'), hub);
  const repo = values.adapter ? parseHfRepoUri(values.adapter) : null;
  const adapter = repo
    ? (await resolvePretrained(repo.repo, PRETRAINED_FILES.reconstructor, { ...hub, ...(repo.revision ? { revision: repo.revision } : {}) })).dir
    : values.adapter;
  return Reconstructor.load({
    model,
    adapter: adapter ?? null,
    ...(values.head ? { head: values.head } : {}),
    ...(values.layer !== undefined ? { layer: int(values.layer, 'layer') } : {}),
    ...(values.threads !== undefined ? { threads: int(values.threads, 'threads') } : {}),
    ...(values.device ? { device: values.device as 'auto' | 'cpu' | 'cuda' } : {}),
  });
}

async function cmdReconstruct(values: Values, positionals: string[]): Promise<void> {
  const texts = values.file ? readExplanations(values.file) : positionals;
  if (texts.length === 0) throw new UsageError('give explanations as arguments or with --file');
  const ar = await open(values);
  try {
    const out: { explanation: string; reconstruction: number[] }[] = [];
    const BATCH = 32; // one batched request per 32 explanations
    for (let i = 0; i < texts.length; i += BATCH) {
      const vs = await ar.reconstruct(texts.slice(i, i + BATCH));
      vs.forEach((v, k) => {
        out.push({ explanation: texts[i + k], reconstruction: Array.from(v) });
        if (!values.json) console.log(`${i + k + 1}. ${JSON.stringify(texts[i + k].slice(0, 80))}\n   → ${fmt(v)}`);
      });
      progress(Math.min(i + BATCH, texts.length), texts.length, values.json);
    }
    if (values.json) console.log(JSON.stringify(out));
  } finally {
    await ar.close();
  }
}

async function cmdRoundTrip(values: Values): Promise<void> {
  const ar = await open(values);
  try {
    let items: { activation: number[] | Float32Array; explanation: string }[];
    if (values.file) {
      items = fs
        .readFileSync(values.file, 'utf8')
        .split('\n')
        .filter((l) => l.trim())
        .map((l) => JSON.parse(l) as { activation: number[]; explanation: string });
    } else {
      const text = need(values.text, 'text');
      const explanation = need(values.explanation, 'explanation');
      const layer = int(values['activation-layer'], 'activation-layer') ?? 23;
      items = [{ activation: await ar.activation(text, { layer }), explanation }];
    }
    const mean = values.mean ? (JSON.parse(fs.readFileSync(values.mean, 'utf8')) as number[]) : undefined;
    const results = [];
    for (let i = 0; i < items.length; i++) {
      const r = await ar.roundTrip(items[i], mean ? { mean } : {});
      results.push({ explanation: items[i].explanation, cosine: r.cosine, mse: r.mse, fve: r.fve, reconstruction: Array.from(r.reconstruction) });
      progress(i + 1, items.length, values.json);
      if (!values.json)
        console.log(`${i + 1}. cos = ${r.cosine.toFixed(4)}  mse = ${r.mse.toFixed(4)}${r.fve !== undefined ? `  fve = ${r.fve.toFixed(4)}` : ''}  ${JSON.stringify(items[i].explanation.slice(0, 60))}`);
    }
    const controls = values.controls ? await ar.controls(items, mean ? { mean } : {}) : undefined;
    if (values.html) {
      const recs = results.map((r) => r.reconstruction);
      const crossRow = items.length > 1 ? crossRowIdentity(recs, items.map((it) => it.activation)) : undefined;
      fs.writeFileSync(values.html, roundTripReport({ explanations: items.map((it) => it.explanation), results, controls, crossRow, note: `${ar.info.model.path}; AR block ${ar.info.layer}` }));
      if (!values.json) console.error(`report written to ${values.html}`);
    }
    if (values.json) console.log(JSON.stringify(controls ? { results, controls } : results));
    else {
      if (results.length > 1) console.log(`mean cos = ${(results.reduce((s, r) => s + r.cosine, 0) / results.length).toFixed(4)} over ${results.length}`);
      if (controls) console.log(`controls: cos ${controls.mean.cosine.toFixed(4)}, empty ${controls.mean.emptyCosine.toFixed(4)}, gibberish ${controls.mean.gibberishCosine.toFixed(4)}, content Δ ${controls.mean.contentDelta.toFixed(4)} ± ${controls.contentDeltaSd.toFixed(4)}`);
    }
  } finally {
    await ar.close();
  }
}

async function cmdTokenize(values: Values, positionals: string[]): Promise<void> {
  const text = values.file ? fs.readFileSync(values.file, 'utf8') : positionals.join(' ');
  const tok = await Tokenizer.fromGGUF(need(values.model, 'model'));
  const ids = tok.encode(text, { bos: !values['no-bos'] });
  if (values.json) console.log(JSON.stringify(Array.from(ids)));
  else {
    console.log(`${ids.length} tokens`);
    console.log(Array.from(ids, (id) => `${id}:${JSON.stringify(tok.decode([id], { special: true }))}`).join(' '));
  }
}

async function cmdInfo(values: Values): Promise<void> {
  const ar = await open(values);
  try {
    const info = ar.info;
    if (values.json) {
      console.log(JSON.stringify(info, null, 2));
      return;
    }
    const m = info.model;
    console.log(`model      ${m.path} (${(m.fileSize / 1e6).toFixed(1)} MB, GGUF v${m.ggufVersion}, ${m.tensorCount} tensors${m.name ? `, "${m.name}"` : ''})`);
    console.log(`           gemma4: ${m.nLayer} blocks, d_model ${m.nEmbd}, vocab ${m.nVocab}, context ${m.nCtxTrain}, head dims ${m.headDimSwa}/${m.headDimFull}, window ${m.slidingWindow}, ${m.nKvShared} KV-shared, PLE ${m.pleDim}`);
    console.log(`           weights: ${m.weightTypes}`);
    console.log(`backend    ${info.backend}: ${info.backendDescription} (${info.backendReasons.join('; ')})`);
    if (info.adapter) {
      const a = info.adapter;
      console.log(`adapter    ${a.dir}: ${a.peftType} r=${a.rank} alpha=${a.alpha}${a.useRslora ? ' (rsLoRA)' : ''}, ${a.pairs} deltas on layers 0..${a.maxLayer}, targets ${a.targetModules.join(' ')}`);
      for (const w of a.warnings) console.log(`           note: ${w}`);
    } else console.log('adapter    none');
    console.log(info.head ? `head       ${info.head.path ?? '(in memory)'}: ${info.head.inDim} → ${info.head.outDim}` : 'head       none');
    console.log(`AR         block ${info.layer}, template ${JSON.stringify(info.template)}`);
  } finally {
    await ar.close();
  }
}

async function cmdDemo(values: Values): Promise<void> {
  const say = (s: string) => { if (!values.json) console.log(s); };
  say('nla-ar demo — SYNTHETIC weights: a small random model with the real Gemma-4 layout, PEFT adapters');
  say('shaped like the released AV (LoRA on attention and MLP) and AR (LoRA on q/k/v/o, a torch-format');
  say('linear_head.pt). The numbers show the pipeline works end to end; they carry no meaning.\n');
  const files = demoFiles();
  say(`model    ${files.model}\nAR       ${files.adapter}\nAV       ${files.av}`);
  const ar = await Reconstructor.load({ model: files.model, adapter: files.adapter, layer: files.layer, device: 'cpu' });
  try {
    const explanations = [
      '<explanation>The text discusses the weather in a coastal town.</explanation>',
      '<explanation>A recipe step: stirring flour into melted butter.</explanation>',
      '',
    ];
    const recs = await ar.reconstruct(explanations);
    const text = 'The harbour was grey and the gulls were loud that morning.';
    const activationLayer = files.activationLayer;
    const activation = await ar.activation(text, { layer: activationLayer });
    const rts = await ar.roundTrip(explanations.map((e) => ({ activation, explanation: e })));
    // the whole loop on one mapping of the model: text → activation → AV explanation → AR reconstruction
    const nla = await Autoencoder.load({ model: files.model, av: files.av, ar: files.adapter, device: 'cpu' });
    let full;
    try {
      full = await nla.roundTrip([text, 'A recipe: stir the flour into the butter.'], { maxTokens: 24 });
    } finally {
      await nla.close();
    }
    if (values.json) {
      console.log(JSON.stringify({
        synthetic: true, files, info: ar.info, reconstructions: recs.map((r) => Array.from(r)),
        roundTrip: rts.map((r) => ({ cosine: r.cosine, mse: r.mse })),
        autoencoder: full.map((r) => ({ text: r.text, finishReason: r.finishReason, cosine: r.cosine, mse: r.mse })),
      }));
      return;
    }
    say(`backend  ${ar.info.backendDescription}; AR block ${ar.info.layer}; prompt of the first explanation = ${ar.tokenize(ar.prompt(explanations[0])).length} tokens\n`);
    explanations.forEach((e, i) => say(`reconstruct(${JSON.stringify(e || '(empty: the documented control case)')})\n  → ${fmt(recs[i])}`));
    say(`\nround trip against the base model's block-${activationLayer} activation of ${JSON.stringify(text)}:`);
    rts.forEach((r, i) => say(`  explanation ${i + 1}: cos = ${r.cosine.toFixed(4)}, direction-MSE = ${r.mse.toFixed(4)}`));
    say(`\nthe whole NLA loop (text → block-${activationLayer} activation → AV → AR), one base model for both adapters:`);
    full.forEach((r) => say(`  AV wrote ${JSON.stringify(r.text.slice(0, 70))} (${r.finishReason})\n  AR: cos = ${r.cosine.toFixed(4)}, direction-MSE = ${r.mse.toFixed(4)}`));
    say(`\nWith the real files:\n  npx nla-ar reconstruct --model gemma-4-E2B-Q4_K_M.gguf --adapter hf:Solshine/gemma-4-e2b-nla-L23-ar-v0_0_1 "<explanation>…</explanation>"`);
    say('  (a Gemma-4-E2B GGUF from llama.cpp\'s converter; the published adapter is downloaded into the Hugging Face cache on first use;');
    say("   in code: Reconstructor.fromPretrained('Solshine/gemma-4-e2b-nla-L23-ar-v0_0_1', { model })");
  } finally {
    await ar.close();
  }
}

/** Commands with their own flags (src/commands/), loaded only when used. */
/* eslint-disable @typescript-eslint/no-require-imports */
const COMMANDS: Record<string, () => { main(argv: string[]): Promise<number> }> = {
  serve: () => require('./commands/serve'),
  eval: () => require('./commands/eval'),
  worker: () => require('./commands/worker'),
};
/* eslint-enable @typescript-eslint/no-require-imports */

export async function main(argv: string[]): Promise<number> {
  if (argv[0] !== undefined && Object.hasOwn(COMMANDS, argv[0])) return COMMANDS[argv[0]]().main(argv.slice(1));
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options, allowPositionals: true, strict: true });
  } catch (e) {
    console.error(`${(e as Error).message}\n\n${USAGE}`);
    return 2;
  }
  const { values, positionals } = parsed;
  const [cmd, ...rest] = positionals;
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  if (!cmd) {
    // bad usage: the usage text goes to stderr like every other usage error (stdout stays for results)
    console.error(USAGE);
    return 2;
  }
  try {
    switch (cmd) {
      case 'demo': await cmdDemo(values); break;
      case 'reconstruct': await cmdReconstruct(values, rest); break;
      case 'verbalize': await cmdVerbalize(values); break;
      case 'round-trip': await (values.av || values.ar ? cmdAutoencode(values) : cmdRoundTrip(values)); break;
      case 'tokenize': await cmdTokenize(values, rest); break;
      case 'info': await cmdInfo(values); break;
      case 'pull': await pull(values, rest); break;
      case 'inspect': inspect(values); break;
      default: throw new UsageError(`unknown command '${cmd}'`);
    }
    return 0;
  } catch (e) {
    if (e instanceof UsageError) {
      console.error(`${e.message}\n\n${USAGE}`);
      return 2;
    }
    if (e instanceof NlaError) console.error(`nla-ar: ${e.code}: ${e.message}`);
    else console.error(`nla-ar: ${(e as Error).stack ?? e}`);
    return 1;
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).then((code) => { process.exitCode = code; });
}
