/**
 * Bad input never crashes the process and always surfaces as an NlaError with the documented code and a
 * message that names the culprit (file, tensor, option, limit). One case per test.
 *
 * Files are made from the demo files (synthetic q8_0 Gemma-4 + PEFT adapter + linear_head.pt) by copying and
 * breaking one thing; GGUF offsets are found with an independent header walker (helpers/gguf.ts).
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Reconstructor, type LoadOptions } from '../src';
import { ZipArchive } from '../src/formats/zip';
import { writeZip } from '../tools/formats/zip-writer';
import { planSyntheticGemma4, tinyGemma4Config, writeGguf, writePeftAdapter } from '../tools/synthetic';
import { ensureLib, LIB } from './helpers/build';
import { demoFiles } from './helpers/demo';
import { expectNlaError } from './helpers/errors';
import { walkGguf } from './helpers/gguf';
import { tinyModel } from './helpers/models';

const files = demoFiles();
const L = files.layer;
const d = files.config.nEmbd;
const FIXTURES = path.join(__dirname, 'fixtures', 'torch');
let tmp: string;
let modelBytes: Buffer;

beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'nla-bad-'));
  modelBytes = fs.readFileSync(files.model);
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** Loads (and closes, if it unexpectedly succeeds) with the demo defaults overridden. */
async function load(o: Partial<LoadOptions> & Record<string, unknown>): Promise<void> {
  const ar = await Reconstructor.load({ model: files.model, adapter: files.adapter, layer: L, device: 'cpu', ...o } as LoadOptions);
  await ar.close();
}

function writeTmp(name: string, bytes: Uint8Array): string {
  const p = path.join(tmp, name);
  fs.writeFileSync(p, bytes);
  return p;
}

/** A copy of the demo adapter folder with one change. */
function adapterCopy(name: string, edit: (dir: string) => void): string {
  const dir = path.join(tmp, name);
  fs.cpSync(files.adapter, dir, { recursive: true });
  edit(dir);
  return dir;
}

/** The truncation points: inside the magic, the counts, the metadata, the tensor infos, the data. */
function truncationPoints(): number[] {
  const w = walkGguf(modelBytes);
  const firstKv = w.kvs[0]!.valueOffset;
  const midKv = w.kvs[Math.floor(w.kvs.length / 2)]!.valueOffset + 3;
  const midInfo = w.tensors[Math.floor(w.tensors.length / 2)]!.typeOffset + 2;
  return [0, 3, 4, 10, 20, firstKv, midKv, midInfo, w.headerEnd - 1, w.headerEnd, w.headerEnd + 100, Math.floor(modelBytes.length / 2), modelBytes.length - 1];
}

describe('model file', () => {
  test('missing model file → ERR_NLA_IO naming the path', async () => {
    await expectNlaError(() => load({ model: path.join(tmp, 'nope.gguf') }), 'ERR_NLA_IO', /nope\.gguf/);
  });

  test('a directory as the model → ERR_NLA_IO', async () => {
    await expectNlaError(() => load({ model: tmp }), 'ERR_NLA_IO', /not a regular file/);
  });

  test('an unreadable model file → ERR_NLA_IO', async () => {
    if (process.getuid?.() === 0) {
      // root reads files whatever their mode: use a path whose parent is a file instead
      await expectNlaError(() => load({ model: path.join(files.model, 'inside.gguf') }), 'ERR_NLA_IO');
      return;
    }
    const p = writeTmp('unreadable.gguf', modelBytes.subarray(0, 1024));
    fs.chmodSync(p, 0o000);
    await expectNlaError(() => load({ model: p }), 'ERR_NLA_IO');
  });

  test('a GGUF truncated at 13 offsets (header, metadata, tensor infos, data) → ERR_NLA_GGUF_MALFORMED each time', async () => {
    const results: string[] = [];
    for (const cut of truncationPoints()) {
      const p = writeTmp(`trunc-${cut}.gguf`, modelBytes.subarray(0, cut));
      try {
        await load({ model: p });
        results.push(`${cut}: loaded`);
      } catch (e) {
        const err = e as { code?: string; message: string };
        if (err.code !== 'ERR_NLA_GGUF_MALFORMED') results.push(`${cut}: ${err.code}: ${err.message}`);
        else if (!err.message.includes(p)) results.push(`${cut}: message does not name the file: ${err.message}`);
      } finally {
        fs.rmSync(p);
      }
    }
    expect(results).toEqual([]);
  });

  test('wrong magic → ERR_NLA_GGUF_MALFORMED mentioning the magic', async () => {
    const b = Buffer.from(modelBytes.subarray(0, 4096));
    b.write('GGUX', 0, 'latin1');
    await expectNlaError(() => load({ model: writeTmp('magic.gguf', b) }), 'ERR_NLA_GGUF_MALFORMED', /magic/);
    const png = Buffer.from('\x89PNG\r\n\x1a\n' + 'x'.repeat(100), 'latin1');
    await expectNlaError(() => load({ model: writeTmp('png.gguf', png) }), 'ERR_NLA_GGUF_MALFORMED', /not a GGUF/);
  });

  test('general.architecture "llama" → ERR_NLA_UNSUPPORTED_ARCH naming it', async () => {
    const kvs = planSyntheticGemma4(tinyGemma4Config()).kvs.map((k) =>
      k.key === 'general.architecture' ? { key: k.key, value: { type: 'string' as const, value: 'llama' } } : k,
    );
    const p = path.join(tmp, 'llama.gguf');
    writeGguf(p, kvs, []);
    await expectNlaError(() => load({ model: p, adapter: null }), 'ERR_NLA_UNSUPPORTED_ARCH', /'llama'/);
  });

  test('a matrix stored as iq2_xxs (type 16) → ERR_NLA_UNSUPPORTED_TENSOR_TYPE naming the tensor and the type', async () => {
    const w = walkGguf(modelBytes);
    const t = w.tensors.find((x) => x.name === 'blk.2.attn_q.weight');
    if (!t) throw new Error('demo model has no blk.2.attn_q.weight');
    const b = Buffer.from(modelBytes);
    b.writeUInt32LE(16, t.typeOffset); // iq2_xxs needs fewer bytes than q8_0, so every offset stays in bounds
    await expectNlaError(() => load({ model: writeTmp('iq2.gguf', b) }), 'ERR_NLA_UNSUPPORTED_TENSOR_TYPE', /blk\.2\.attn_q\.weight.*iq2_xxs/);
  });

  test('an unknown tensor type id (999) → ERR_NLA_GGUF_MALFORMED naming the tensor', async () => {
    const w = walkGguf(modelBytes);
    const t = w.tensors.find((x) => x.name === 'blk.0.ffn_down.weight')!;
    const b = Buffer.from(modelBytes);
    b.writeUInt32LE(999, t.typeOffset);
    await expectNlaError(() => load({ model: writeTmp('t999.gguf', b) }), 'ERR_NLA_GGUF_MALFORMED', /blk\.0\.ffn_down\.weight.*999/);
  });

  test('the process survives the truncated files in a child process too (exit 0 after printing each code)', () => {
    ensureLib();
    const cuts = truncationPoints();
    const paths = cuts.map((cut) => writeTmp(`child-trunc-${cut}.gguf`, modelBytes.subarray(0, cut)));
    const script = `
      const { Reconstructor, Tokenizer } = require(${JSON.stringify(LIB)});
      (async () => {
        for (const p of ${JSON.stringify(paths)}) {
          for (const open of [() => Reconstructor.load({ model: p, device: 'cpu' }), () => Tokenizer.fromGGUF(p)]) {
            try { await open(); console.log('LOADED ' + p); } catch (e) { console.log(e.code); }
          }
        }
      })();`;
    const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 60_000 });
    if (r.status !== 0) throw new Error(`child exited with ${r.status} (signal ${r.signal}):\n${r.stdout}\n${r.stderr}`);
    const lines = r.stdout.trim().split('\n');
    expect(lines).toEqual(Array(cuts.length * 2).fill('ERR_NLA_GGUF_MALFORMED'));
  });
});

describe('adapter folder', () => {
  const stBytes = () => fs.readFileSync(path.join(files.adapter, 'adapter_model.safetensors'));

  /** Rewrites the safetensors JSON header (data section unchanged). */
  function withHeader(edit: (h: Record<string, { data_offsets: [number, number] }>, keys: string[]) => void): Buffer {
    const st = stBytes();
    const n = Number(st.readBigUInt64LE(0));
    const h = JSON.parse(st.toString('utf8', 8, 8 + n)) as Record<string, { data_offsets: [number, number] }>;
    edit(h, Object.keys(h).filter((k) => k !== '__metadata__').sort((a, b) => h[a]!.data_offsets[0] - h[b]!.data_offsets[0]));
    let json = JSON.stringify(h);
    while ((8 + Buffer.byteLength(json)) % 8) json += ' ';
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(Buffer.byteLength(json)));
    return Buffer.concat([len, Buffer.from(json), st.subarray(8 + n)]);
  }

  test('adapter folder missing → ERR_NLA_IO', async () => {
    await expectNlaError(() => load({ adapter: path.join(tmp, 'no-such-adapter') }), 'ERR_NLA_IO', /no-such-adapter/);
  });

  test('no adapter_model.safetensors → ERR_NLA_IO naming the file', async () => {
    const dir = adapterCopy('no-st', (p) => fs.rmSync(path.join(p, 'adapter_model.safetensors')));
    await expectNlaError(() => load({ adapter: dir }), 'ERR_NLA_IO', /adapter_model\.safetensors/);
  });

  test('no adapter_config.json → ERR_NLA_IO naming the file', async () => {
    const dir = adapterCopy('no-cfg', (p) => fs.rmSync(path.join(p, 'adapter_config.json')));
    await expectNlaError(() => load({ adapter: dir }), 'ERR_NLA_IO', /adapter_config\.json/);
  });

  test('safetensors header length larger than the file → ERR_NLA_ADAPTER_INVALID', async () => {
    const dir = adapterCopy('big-header', (p) => {
      const b = stBytes();
      b.writeBigUInt64LE(BigInt(b.length * 2), 0);
      fs.writeFileSync(path.join(p, 'adapter_model.safetensors'), b);
    });
    await expectNlaError(() => load({ adapter: dir }), 'ERR_NLA_ADAPTER_INVALID', /header length/);
  });

  test('overlapping data_offsets → ERR_NLA_ADAPTER_INVALID naming both tensors', async () => {
    const dir = adapterCopy('overlap', (p) =>
      fs.writeFileSync(
        path.join(p, 'adapter_model.safetensors'),
        withHeader((h, keys) => {
          const a = h[keys[0]!]!, b = h[keys[1]!]!;
          const size = b.data_offsets[1] - b.data_offsets[0];
          b.data_offsets = [a.data_offsets[0] + 4, a.data_offsets[0] + 4 + size];
        }),
      ),
    );
    await expectNlaError(() => load({ adapter: dir }), 'ERR_NLA_ADAPTER_INVALID', /overlap/);
  });

  test('data_offsets past the end of the data → ERR_NLA_ADAPTER_INVALID', async () => {
    const dir = adapterCopy('past-end', (p) =>
      fs.writeFileSync(
        path.join(p, 'adapter_model.safetensors'),
        withHeader((h, keys) => {
          const b = h[keys[keys.length - 1]!]!;
          b.data_offsets = [b.data_offsets[0] + 1_000_000, b.data_offsets[1] + 1_000_000];
        }),
      ),
    );
    await expectNlaError(() => load({ adapter: dir }), 'ERR_NLA_ADAPTER_INVALID', /out of range/);
  });

  test('a truncated adapter_config.json → ERR_NLA_ADAPTER_INVALID with the position', async () => {
    const dir = adapterCopy('bad-json', (p) => fs.writeFileSync(path.join(p, 'adapter_config.json'), '{"r": 8,'));
    await expectNlaError(() => load({ adapter: dir }), 'ERR_NLA_ADAPTER_INVALID', /JSON.*line 1/);
  });

  test('an adapter made for another model (nEmbd 128) → ERR_NLA_ADAPTER_MISMATCH with both shapes', async () => {
    const dir = path.join(tmp, 'other-model');
    writePeftAdapter(dir, tinyGemma4Config({ nEmbd: 128 }), { targets: ['q_proj', 'v_proj'], seed: 3 });
    await expectNlaError(() => load({ adapter: dir, head: path.join(files.adapter, 'linear_head.pt') }), 'ERR_NLA_ADAPTER_MISMATCH', /128.*256/);
  });

  const cfg = () => JSON.parse(fs.readFileSync(path.join(files.adapter, 'adapter_config.json'), 'utf8')) as Record<string, unknown>;

  test('DoRA (use_dora: true) → ERR_NLA_ADAPTER_INVALID', async () => {
    const dir = adapterCopy('dora', (p) => fs.writeFileSync(path.join(p, 'adapter_config.json'), JSON.stringify({ ...cfg(), use_dora: true })));
    await expectNlaError(() => load({ adapter: dir }), 'ERR_NLA_ADAPTER_INVALID', /DoRA/);
  });

  test('peft_type IA3 → ERR_NLA_ADAPTER_INVALID naming it', async () => {
    const dir = adapterCopy('ia3', (p) => fs.writeFileSync(path.join(p, 'adapter_config.json'), JSON.stringify({ ...cfg(), peft_type: 'IA3' })));
    await expectNlaError(() => load({ adapter: dir }), 'ERR_NLA_ADAPTER_INVALID', /IA3/);
  });
});

describe('linear head', () => {
  /** A safetensors file from raw tensors (header padded to 8 bytes). */
  function safetensors(tensors: Record<string, { dtype: string; shape: number[]; bytes: Buffer }>): Buffer {
    let off = 0;
    const h: Record<string, unknown> = {};
    for (const [k, t] of Object.entries(tensors)) {
      h[k] = { dtype: t.dtype, shape: t.shape, data_offsets: [off, off + t.bytes.length] };
      off += t.bytes.length;
    }
    let json = JSON.stringify(h);
    while ((8 + json.length) % 8) json += ' ';
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(json.length));
    return Buffer.concat([len, Buffer.from(json), ...Object.values(tensors).map((t) => t.bytes)]);
  }

  test('a float32 safetensors head of the right shape loads (control for the dtype test)', async () => {
    const p = writeTmp('head-f32.safetensors', safetensors({
      weight: { dtype: 'F32', shape: [d, d], bytes: Buffer.alloc(d * d * 4) },
      bias: { dtype: 'F32', shape: [d], bytes: Buffer.alloc(d * 4) },
    }));
    await load({ head: p });
  });

  test('an 8x8 head for a 256-d model → ERR_NLA_HEAD_INVALID with both sizes', async () => {
    await expectNlaError(() => load({ head: path.join(FIXTURES, 'linear_8x8_params.pt') }), 'ERR_NLA_HEAD_INVALID', /8 values.*256/);
  });

  test('an int32 head (safetensors) → ERR_NLA_HEAD_INVALID naming the dtype', async () => {
    const p = writeTmp('head-i32.safetensors', safetensors({
      weight: { dtype: 'I32', shape: [d, d], bytes: Buffer.alloc(d * d * 4) },
      bias: { dtype: 'I32', shape: [d], bytes: Buffer.alloc(d * 4) },
    }));
    await expectNlaError(() => load({ head: p }), 'ERR_NLA_HEAD_INVALID', /I32/);
  });

  // BUG (src/formats/torch.ts, not a product-surface file): a torch.save'd state_dict whose tensors are int64
  // (torch.LongStorage) is refused as ERR_NLA_UNSAFE_PICKLE ("not on the allowlist; refusing to load it"), as if
  // the file were malicious. It is an ordinary tensor state_dict of the wrong dtype: ERR_NLA_HEAD_INVALID.
  test('an int64 head (linear_head.pt with torch.LongStorage) → ERR_NLA_HEAD_INVALID, not UNSAFE_PICKLE', async () => {
    const z = ZipArchive.open(fs.readFileSync(path.join(FIXTURES, 'linear_8x8_params.pt')));
    const entries = z.entries.map((e) => {
      let data = Buffer.from(z.read(e.name));
      // GLOBAL 'torch\nFloatStorage\n' is newline-terminated (protocol 2), so a longer name needs no length fix;
      // storage sizes then disagree too (8 bytes per element): either way the file must be HEAD_INVALID
      if (e.name.endsWith('data.pkl')) data = Buffer.from(data.toString('latin1').split('FloatStorage').join('LongStorage'), 'latin1');
      return { name: e.name, data };
    });
    const p = writeTmp('head-int64.pt', writeZip(entries));
    await expectNlaError(() => load({ head: p }), 'ERR_NLA_HEAD_INVALID', /int|Long/i);
  });

  test('a malicious linear_head.pt (posix.system) → ERR_NLA_UNSAFE_PICKLE, as `head` and inside the adapter folder', async () => {
    const mal = path.join(FIXTURES, 'malicious.pt');
    await expectNlaError(() => load({ head: mal }), 'ERR_NLA_UNSAFE_PICKLE', /system/);
    const dir = adapterCopy('malicious', (p) => fs.copyFileSync(mal, path.join(p, 'linear_head.pt')));
    await expectNlaError(() => load({ adapter: dir }), 'ERR_NLA_UNSAFE_PICKLE', /system/);
  });

  test('a head path that does not exist → ERR_NLA_IO', async () => {
    await expectNlaError(() => load({ head: path.join(tmp, 'nope.pt') }), 'ERR_NLA_IO', /nope\.pt/);
  });
});

describe('options and arguments', () => {
  let ar: Reconstructor;
  beforeAll(async () => {
    ar = await Reconstructor.load({ model: files.model, adapter: files.adapter, layer: L, device: 'cpu' });
  });
  afterAll(() => ar.close());

  test("a misspelled option ({adaptor}) → ERR_NLA_INVALID_ARG naming 'adaptor'", async () => {
    await expectNlaError(() => Reconstructor.load({ model: files.model, adaptor: files.adapter } as unknown as LoadOptions), 'ERR_NLA_INVALID_ARG', /adaptor/);
    await expectNlaError(() => ar.hiddenState('x', { layr: 1 } as never), 'ERR_NLA_INVALID_ARG', /layr/);
    await expectNlaError(() => ar.reconstruct('x', { sginal: null } as never), 'ERR_NLA_INVALID_ARG', /sginal/);
  });

  test('missing or non-object options → ERR_NLA_INVALID_ARG', async () => {
    await expectNlaError(() => Reconstructor.load(undefined as unknown as LoadOptions), 'ERR_NLA_INVALID_ARG', /model/);
    await expectNlaError(() => Reconstructor.load('model.gguf' as unknown as LoadOptions), 'ERR_NLA_INVALID_ARG');
    await expectNlaError(() => load({ template: 'no placeholder' }), 'ERR_NLA_INVALID_ARG', /\{explanation\}/);
    await expectNlaError(() => load({ threads: 0 }), 'ERR_NLA_INVALID_ARG', /threads/);
    await expectNlaError(() => load({ device: 'tpu' as never }), 'ERR_NLA_INVALID_ARG', /device/);
  });

  test('layer out of range → ERR_NLA_INVALID_ARG with the block count, at load and per call', async () => {
    await expectNlaError(() => load({ layer: files.config.nLayer }), 'ERR_NLA_INVALID_ARG', /layer 8 does not exist.*8 blocks/);
    await expectNlaError(() => load({ layer: -1 }), 'ERR_NLA_INVALID_ARG', /layer/);
    await expectNlaError(() => load({ layer: 1.5 }), 'ERR_NLA_INVALID_ARG', /layer/);
    await expectNlaError(() => ar.hiddenState('x', { layer: 99 }), 'ERR_NLA_INVALID_ARG', /layer 99/);
    await expectNlaError(() => ar.activation('x', { layer: 8 }), 'ERR_NLA_INVALID_ARG', /layer 8/);
    await expectNlaError(() => ar.activation('x'), 'ERR_NLA_INVALID_ARG', /layer 23/); // the default (23) is past this model
  });

  test('non-string explanations (number, null, undefined, object) → ERR_NLA_INVALID_ARG; the empty string is fine', async () => {
    for (const bad of [42, null, undefined, { text: 'x' }]) {
      await expectNlaError(() => ar.reconstruct(bad as unknown as string), 'ERR_NLA_INVALID_ARG', /explanation/);
    }
    await expectNlaError(() => ar.reconstruct(['ok', 7 as unknown as string]), 'ERR_NLA_INVALID_ARG', /explanations\[1\]/);
    await expectNlaError(() => ar.hiddenState(null as unknown as string), 'ERR_NLA_INVALID_ARG');
    await expectNlaError(() => ar.activation(5 as unknown as string, { layer: 0 }), 'ERR_NLA_INVALID_ARG');
    await expectNlaError(() => ar.tokenize(undefined as unknown as string), 'ERR_NLA_INVALID_ARG');
    expect(() => ar.prompt(3 as unknown as string)).toThrow(/explanation must be a string/);
    expect(await ar.reconstruct('')).toHaveLength(d);
  });

  test('an explanation longer than the context → ERR_NLA_CONTEXT_OVERFLOW with the limit in the message', async () => {
    const small = tinyModel('ctx64', { contextLength: 64 });
    const r = await Reconstructor.load({ model: small.path, head: path.join(files.adapter, 'linear_head.pt'), layer: 3, device: 'cpu' });
    try {
      expect(r.info.maxTokens).toBe(64);
      const long = 'word '.repeat(100);
      await expectNlaError(() => r.reconstruct(long), 'ERR_NLA_CONTEXT_OVERFLOW', /at most 64/);
      await expectNlaError(() => r.reconstruct(['short', long]), 'ERR_NLA_CONTEXT_OVERFLOW', /at most 64/);
      await expectNlaError(() => r.activation(long, { layer: 3 }), 'ERR_NLA_CONTEXT_OVERFLOW', /64/);
      expect(await r.reconstruct('word '.repeat(10))).toHaveLength(d); // still usable, and short prompts fit
    } finally {
      await r.close();
    }
    // maxTokens lowers the limit below the model's context
    const capped = await Reconstructor.load({ model: files.model, adapter: files.adapter, layer: L, device: 'cpu', maxTokens: 20 });
    try {
      await expectNlaError(() => capped.reconstruct('a few more words than twenty tokens allow, surely'), 'ERR_NLA_CONTEXT_OVERFLOW', /at most 20/);
    } finally {
      await capped.close();
    }
  });

  test('roundTrip with NaN / Infinity / wrong length / non-array activations → ERR_NLA_INVALID_ARG', async () => {
    const rt = (activation: unknown, opts?: object) => ar.roundTrip({ activation: activation as Float32Array, explanation: 'x' }, opts as never);
    await expectNlaError(() => rt(new Float32Array(d).fill(1).fill(NaN, 7, 8)), 'ERR_NLA_INVALID_ARG', /activation\[7\] is not finite/);
    await expectNlaError(() => rt(new Float64Array(d).fill(Infinity)), 'ERR_NLA_INVALID_ARG', /not finite/);
    await expectNlaError(() => rt(new Array(d).fill(-Infinity)), 'ERR_NLA_INVALID_ARG', /not finite/);
    await expectNlaError(() => rt(new Float32Array(d - 1)), 'ERR_NLA_INVALID_ARG', /255 values, expected d_model = 256/);
    await expectNlaError(() => rt('0,1,2'), 'ERR_NLA_INVALID_ARG', /must be a Float32Array/);
    await expectNlaError(() => rt({ length: d }), 'ERR_NLA_INVALID_ARG', /must be a Float32Array/);
    await expectNlaError(() => rt(new Int32Array(d)), 'ERR_NLA_INVALID_ARG', /must be a Float32Array/);
    await expectNlaError(() => ar.roundTrip(null as never), 'ERR_NLA_INVALID_ARG');
    await expectNlaError(() => ar.roundTrip([{ activation: new Float32Array(d), explanation: 'x' }, 5] as never), 'ERR_NLA_INVALID_ARG', /input\[1\]/);
    await expectNlaError(() => rt(new Float32Array(d).fill(1), { mean: new Float32Array(3) }), 'ERR_NLA_INVALID_ARG', /mean/);
    await expectNlaError(() => rt(new Float32Array(d).fill(1), { mean: new Float32Array(d).fill(NaN) }), 'ERR_NLA_INVALID_ARG', /mean/);
    await expectNlaError(() => ar.roundTrip({ activation: new Float32Array(d).fill(1), explanation: 3 } as never), 'ERR_NLA_INVALID_ARG', /explanation/);
  });

  test('calls after close → ERR_NLA_CLOSED', async () => {
    const r = await Reconstructor.load({ model: files.model, adapter: files.adapter, layer: L, device: 'cpu' });
    await r.close();
    await expectNlaError(() => r.reconstruct('x'), 'ERR_NLA_CLOSED');
    await expectNlaError(() => r.reconstruct(['x', 'y']), 'ERR_NLA_CLOSED');
    await expectNlaError(() => r.hiddenState('x'), 'ERR_NLA_CLOSED');
    await expectNlaError(() => r.activation('x', { layer: 0 }), 'ERR_NLA_CLOSED');
    await expectNlaError(() => r.roundTrip({ activation: new Float32Array(d).fill(1), explanation: 'x' }), 'ERR_NLA_CLOSED');
    await expectNlaError(() => r.tokenize('x'), 'ERR_NLA_CLOSED');
    await expectNlaError(() => r.decode([2]), 'ERR_NLA_CLOSED');
  });

  const gpu = fs.existsSync('/dev/nvidiactl') || fs.existsSync('/dev/nvidia0');
  (gpu ? test.skip : test)("device 'cuda' without a GPU → ERR_NLA_NO_CUDA; 'auto' falls back to cpu and says why", async () => {
    await expectNlaError(() => load({ device: 'cuda' }), 'ERR_NLA_NO_CUDA', /cuda/);
    const r = await Reconstructor.load({ model: files.model, adapter: files.adapter, layer: L, device: 'auto' });
    try {
      expect(r.info.backend).toBe('cpu');
      expect(r.info.backendReasons.join(' ')).toMatch(/cuda/);
    } finally {
      await r.close();
    }
  });
});
