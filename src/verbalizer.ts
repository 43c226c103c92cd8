/**
 * Verbalizer: the activation verbalizer (AV) of the Gemma-4-E2B NLA. activation → its direction scaled to the
 * injection norm (√d_model) → written over the marker token's embedding in the AV prompt (the per-layer token
 * lookup stays by id, as the released scripts' forward hook on embed_tokens) → the base model with the AV
 * LoRA, all 35 blocks and the LM head → greedy decoding (or sampling) until an end-of-generation token, a stop
 * string or the length limit → the text, and the explanation between its <explanation> tags.
 */
import { z } from 'zod';
import { verbalizerZodFields } from './verbalizer-zod';
import { NlaError } from './errors';
import { ActivationVector } from './vector';
import { loadAdapterDir, openBaseModel, type OpenedModel } from './model';
import { toNlaError, type NativeAdapter, type NativeAdapterInfo, type NativeModel, type NativeModelInfo, type NativeSession, type NativeVerbalizer } from './native';
import { ActivationOptionsSchema, parseOptions, type OptionsSchema } from './options';
import { injectionNorm, readSidecar, type InjectionMarkerIds, type InjectionScale } from './sidecar';
import type { Vector } from './metrics';

/** The released AV's prompt (nla-protocol.md §1.3): no chat template, no trailing newline, ㊗ (U+3297) marks the vector. */
export const DEFAULT_AV_TEMPLATE =
  'You are a meticulous AI researcher conducting an important investigation into activation vectors from a language model. ' +
  'Your overall task is to describe the semantic content of that activation vector.\n\n' +
  'We will pass the vector enclosed in <concept> tags into your context. You must then produce an explanation for the vector, ' +
  'enclosed within <explanation> tags. The explanation consists of 2-3 text snippets describing that vector.\n\n' +
  'Here is the vector:\n\n<concept>\u3297</concept>';

/** The released pair's injection marker in the Gemma-4 vocabulary: ㊗ between `>` and `</`. */
export const RELEASED_MARKER: InjectionMarkerIds = { token: 249568, left: 236813, right: 954 };

/** The placeholder the reference sidecars use for the marker character in their AV templates. */
const INJECT_PLACEHOLDER = '<INJECT>';

/** The injection marker's token ids (see RELEASED_MARKER). */
export interface MarkerIds {
  token: number;
  /** -1: not checked */
  left: number;
  right: number;
}

export interface VerbalizerLoadOptions {
  /** Base model: a llama.cpp GGUF with general.architecture = gemma4. */
  model: string;
  /** The AV's PEFT folder (adapter_config.json, adapter_model.safetensors, optional nla_meta.yaml); null: the base model. */
  adapter: string | null;
  /** The AV prompt with the marker character (default: the adapter's nla_meta.yaml template, else DEFAULT_AV_TEMPLATE). */
  template?: string;
  /** Marker token ids (default: nla_meta.yaml's, else the released pair's RELEASED_MARKER). */
  marker?: MarkerIds;
  /** Scale of the injected vector (default: nla_meta.yaml's injection_scale, else 'sqrt_d_model'). */
  injectionScale?: InjectionScale;
  /** Most tokens a sequence may hold, prompt included (default: the model's context length). */
  maxTokens?: number;
  device?: 'auto' | 'cpu' | 'cuda';
  threads?: number;
  /** 'exact': tanh-GELU in fp32. 'llamacpp': GELU through fp16 as llama.cpp's CPU backend does (for comparisons). */
  numerics?: 'exact' | 'llamacpp';
}

/** VerbalizerLoadOptions after validation, defaults filled in. */
export interface ResolvedVerbalizerOptions {
  model: string;
  adapter: string | null;
  template?: string;
  marker?: MarkerIds;
  injectionScale?: InjectionScale;
  maxTokens?: number;
  device: 'auto' | 'cpu' | 'cuda';
  threads?: number;
  numerics: 'exact' | 'llamacpp';
}

export interface VerbalizeOptions {
  /** New tokens at most (default 120, as the released scripts). */
  maxTokens?: number;
  /** 0 (default): greedy. */
  temperature?: number;
  topK?: number;
  topP?: number;
  /** Seed of the sampler; item i of a batch uses seed + i (so a batch equals its items one by one). */
  seed?: number;
  /** Generation also ends when the text contains one of these (finishReason 'stop'; the text is cut before it). */
  stop?: string[];
  signal?: AbortSignal;
}

interface ResolvedVerbalizeOptions {
  maxTokens: number;
  temperature: number;
  topK?: number;
  topP?: number;
  seed: number;
  stop?: string[];
  signal?: AbortSignal;
}

const VerbalizerLoadOptionsZod = z.strictObject({
  model: z.string().min(1),
  adapter: z.string().min(1).nullable(),
  ...verbalizerZodFields,
  maxTokens: z.int().min(1).optional(),
  device: z.enum(['auto', 'cpu', 'cuda']).default('auto'),
  threads: z.int().min(1).max(1024).optional(),
  numerics: z.enum(['exact', 'llamacpp']).default('exact'),
});
export const VerbalizerLoadOptionsSchema: OptionsSchema<ResolvedVerbalizerOptions> = VerbalizerLoadOptionsZod;

const VerbalizeOptionsZod = z.strictObject({
  maxTokens: z.int().min(1).default(120),
  temperature: z.number().min(0).refine(Number.isFinite, { error: 'must be finite' }).default(0),
  topK: z.int().min(0).optional(),
  topP: z.number().gt(0).max(1).optional(),
  seed: z.int().min(0).max(Number.MAX_SAFE_INTEGER).default(0),
  stop: z.array(z.string().min(1)).max(64).optional(),
  signal: z.instanceof(AbortSignal).optional(),
});
export const VerbalizeOptionsSchema: OptionsSchema<ResolvedVerbalizeOptions> = VerbalizeOptionsZod;


export interface Verbalization {
  /** The decoded new tokens (special tokens skipped), as the released scripts pass it to the AR. */
  text: string;
  /** The text between <explanation> and </explanation> (trimmed) when present, else the text. */
  explanation: string;
  /** The generated token ids (without the end-of-generation token). */
  tokens: Int32Array;
  finishReason: 'eos' | 'length' | 'stop';
}

export interface VerbalizerInfo {
  backend: 'cpu' | 'cuda';
  backendReasons: string[];
  backendDescription: string;
  model: NativeModelInfo;
  adapter: NativeAdapterInfo | null;
  template: string;
  /** Index of the injection site in the tokenized prompt, and the prompt's length. */
  site: number;
  promptTokens: number;
  marker: InjectionMarkerIds;
  injectionScale: InjectionScale;
  /** The L2 norm injected vectors get (0: as given). */
  injectionNorm: number;
  /** End-of-generation token ids. */
  eog: number[];
  maxTokens: number;
  numerics: 'exact' | 'llamacpp';
  /** Things that look wrong but are not errors (e.g. an adapter without MLP deltas: an AR passed as the AV). */
  warnings: string[];
}

/** The text between the first <explanation> and </explanation>, trimmed; the whole text when the tags are absent. */
export function extractExplanation(text: string): string {
  const m = /<explanation>([\s\S]*?)<\/explanation>/.exec(text);
  return m ? m[1].trim() : text;
}

function checkSignal(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new NlaError('ERR_NLA_ABORTED', 'the operation was aborted', { cause: signal.reason });
}

function toF32(v: Vector, where: string, d: number): Float32Array {
  const a = v as unknown;
  if (!(a instanceof Float32Array || a instanceof Float64Array || Array.isArray(a)))
    throw new NlaError('ERR_NLA_INVALID_ARG', `${where} must be a Float32Array, Float64Array or number[]`);
  if (v.length !== d) throw new NlaError('ERR_NLA_INVALID_ARG', `${where} has ${v.length} values, expected d_model = ${d}`);
  const out = new Float32Array(d);
  let nonzero = false;
  for (let i = 0; i < d; i++) {
    const x = v[i];
    if (typeof x !== 'number' || !Number.isFinite(x)) throw new NlaError('ERR_NLA_INVALID_ARG', `${where}[${i}] is not finite`);
    out[i] = x;
    if (!Number.isFinite(out[i])) throw new NlaError('ERR_NLA_INVALID_ARG', `${where}[${i}] = ${x} overflows float32`);
    if (x !== 0) nonzero = true;
  }
  if (!nonzero) throw new NlaError('ERR_NLA_INVALID_ARG', `${where} is all zeros: it has no direction to inject`);
  return out;
}

export class Verbalizer implements AsyncDisposable {
  private readonly native: NativeModel;
  private readonly session: NativeSession;
  private readonly verbalizer: NativeVerbalizer;
  private readonly _info: VerbalizerInfo;
  private readonly ownsModel: boolean;
  private queue: Promise<unknown> = Promise.resolve();
  private closed = false;
  private closing: Promise<void> | null = null;

  private constructor(native: NativeModel, session: NativeSession, verbalizer: NativeVerbalizer, info: VerbalizerInfo, ownsModel: boolean) {
    this.native = native;
    this.session = session;
    this.verbalizer = verbalizer;
    this._info = info;
    this.ownsModel = ownsModel;
  }

  /** Loads the base GGUF and the AV adapter folder. Options are validated strictly. */
  static async load(options: VerbalizerLoadOptions): Promise<Verbalizer> {
    const opts = parseOptions(VerbalizerLoadOptionsSchema, options, 'Verbalizer.load options');
    const opened = await openBaseModel(opts);
    try {
      return await Verbalizer.attach(opened, opts, true);
    } catch (e) {
      opened.native.close();
      throw e;
    }
  }

  /** @internal A Verbalizer on an already opened model (the Autoencoder's); ownsModel false: close() leaves it open. */
  static async attach(opened: OpenedModel, opts: ResolvedVerbalizerOptions, ownsModel: boolean): Promise<Verbalizer> {
    const { native, backend, reasons } = opened;
    const model = native.info();
    const adapter: NativeAdapter | null = opts.adapter ? await loadAdapterDir(native, opts.adapter) : null;
    const sidecar = opts.adapter ? readSidecar(opts.adapter) : undefined;
    let template = opts.template ?? sidecar?.avTemplate ?? DEFAULT_AV_TEMPLATE;
    if (template.includes(INJECT_PLACEHOLDER)) template = template.split(INJECT_PLACEHOLDER).join(sidecar?.injectionChar ?? '\u3297');
    const marker: InjectionMarkerIds = opts.marker ?? { ...RELEASED_MARKER, ...(sidecar?.marker ?? {}) };
    const scale: InjectionScale = opts.injectionScale ?? sidecar?.injectionScale ?? 'sqrt_d_model';
    const norm = injectionNorm(scale, model.nEmbd);
    const maxTokens = Math.min(opts.maxTokens ?? model.nCtxTrain, model.nCtxTrain);
    const prompt = native.tokenize(template, true, true);
    // End of generation: the model's EOS and Gemma's end of turn (the base model's generation config).
    const eog = [model.eos];
    const turn = native.tokenize('<turn|>', false, true);
    if (turn.length === 1 && !eog.includes(turn[0])) eog.push(turn[0]);
    const warnings: string[] = [];
    const adapterInfo = adapter ? adapter.info() : null;
    if (adapterInfo && !adapterInfo.modules.some((m) => m.module === 'gate_proj' || m.module === 'up_proj' || m.module === 'down_proj'))
      warnings.push(`the adapter ${adapterInfo.dir} has no MLP (gate/up/down) deltas: the released AV adapts attention and MLP; is this an AR adapter?`);
    if (sidecar?.dModel !== undefined && sidecar.dModel !== model.nEmbd)
      warnings.push(`${sidecar.path} says d_model ${sidecar.dModel} but the model's is ${model.nEmbd}`);
    await native.prefetch(model.nLayer - 1); // every block (see Reconstructor.attach)
    const session = native.createSession({ maxTokens });
    let verbalizer: NativeVerbalizer;
    try {
      verbalizer = session.createVerbalizer({ prompt, marker, adapter: adapter ?? undefined, injectionNorm: norm, eog: Int32Array.from(eog) });
    } catch (e) {
      session.close();
      throw toNlaError(e);
    }
    const info: VerbalizerInfo = {
      backend,
      backendReasons: reasons,
      backendDescription: model.backendDescription,
      model,
      adapter: adapterInfo,
      template,
      site: verbalizer.site,
      promptTokens: prompt.length,
      marker,
      injectionScale: scale,
      injectionNorm: norm,
      eog,
      maxTokens,
      numerics: opts.numerics,
      warnings,
    };
    return new Verbalizer(native, session, verbalizer, info, ownsModel);
  }

  get info(): VerbalizerInfo {
    return this._info;
  }

  /** Verbalizes one activation (or many, decoded together; each finishes on its own). */
  verbalize(activation: Vector, options?: VerbalizeOptions): Promise<Verbalization>;
  verbalize(activations: Vector[], options?: VerbalizeOptions): Promise<Verbalization[]>;
  async verbalize(input: Vector | Vector[], options?: VerbalizeOptions): Promise<Verbalization | Verbalization[]> {
    this.assertOpen();
    const single = !Array.isArray(input) || (input.length > 0 && typeof input[0] === 'number');
    const list = single ? [input as Vector] : (input as Vector[]);
    const out = await this.generate(list, options, single, undefined);
    return single ? out[0] : out;
  }

  /**
   * The base model's residual-stream activation of raw text (no adapter, no template): block `layer` (default 23)
   * at the last token — what the verbalizer explains.
   */
  activation(text: string, options?: { layer?: number; signal?: AbortSignal }): Promise<Float32Array>;
  activation(texts: string[], options?: { layer?: number; signal?: AbortSignal }): Promise<Float32Array[]>;
  async activation(texts: string | string[], options?: { layer?: number; signal?: AbortSignal }): Promise<Float32Array | Float32Array[]> {
    this.assertOpen();
    const o = parseOptions(ActivationOptionsSchema, options, 'activation options');
    const single = !Array.isArray(texts);
    const list = single ? [texts as string] : (texts as string[]);
    list.forEach((t, i) => {
      if (typeof t !== 'string') throw new NlaError('ERR_NLA_INVALID_ARG', `${single ? 'text' : `texts[${i}]`} must be a string`);
    });
    if (o.layer >= this._info.model.nLayer)
      throw new NlaError('ERR_NLA_INVALID_ARG', `layer ${o.layer} does not exist: the model has ${this._info.model.nLayer} blocks`);
    checkSignal(o.signal);
    const flag = new Int32Array(new SharedArrayBuffer(4));
    const onAbort = () => Atomics.store(flag, 0, 1);
    o.signal?.addEventListener('abort', onAbort, { once: true });
    const job = this.queue.then(async () => {
      try {
        return (await this.session.hiddenStates(list, { layer: o.layer }, flag)).map((h) => ActivationVector.view(h.data));
      } catch (e) {
        throw toNlaError(e);
      }
    });
    this.queue = job.catch(() => undefined);
    const out = await job.finally(() => o.signal?.removeEventListener('abort', onAbort));
    return single ? out[0] : out;
  }

  /** The text of one verbalization as it is generated, piece by piece (the pieces concatenate to `text`). */
  async *stream(activation: Vector, options?: VerbalizeOptions): AsyncGenerator<string, Verbalization, undefined> {
    this.assertOpen();
    const pending: number[] = [];
    let wake: (() => void) | null = null;
    let emitted = '';
    const done = this.generate([activation], options, true, (_item, token) => {
      pending.push(token);
      wake?.();
    });
    let finished = false;
    const end = () => {
      finished = true;
      wake?.();
    };
    void done.then(end, end);
    const tokens: number[] = [];
    while (!finished || pending.length) {
      if (!pending.length) {
        await new Promise<void>((r) => (wake = r));
        wake = null;
        continue;
      }
      tokens.push(...pending.splice(0));
      const text = this.native.decode(Int32Array.from(tokens), false);
      // a token may end inside a UTF-8 sequence: hold back a trailing replacement character
      const safe = text.endsWith('\uFFFD') ? text.slice(0, -1) : text;
      if (safe.length > emitted.length && safe.startsWith(emitted)) {
        yield safe.slice(emitted.length);
        emitted = safe;
      }
    }
    const [result] = await done;
    if (result.text.startsWith(emitted) && result.text.length > emitted.length) yield result.text.slice(emitted.length);
    return result;
  }

  /** Waits for calls in flight, then frees the verbalizer (and the model, unless shared). Idempotent. */
  close(): Promise<void> {
    if (!this.closing) {
      this.closed = true;
      const release = () => {
        this.verbalizer.close();
        this.session.close();
        if (this.ownsModel) this.native.close();
      };
      this.closing = this.queue.then(release, release);
    }
    return this.closing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  private assertOpen(): void {
    if (this.closed) throw new NlaError('ERR_NLA_CLOSED', 'this Verbalizer was closed');
  }

  private generate(list: Vector[], options: VerbalizeOptions | undefined, single: boolean, onToken: ((item: number, token: number) => void) | undefined): Promise<Verbalization[]> {
    const o = parseOptions(VerbalizeOptionsSchema, options, 'verbalize options');
    const d = this._info.model.nEmbd;
    const acts = list.map((v, i) => toF32(v, single ? 'activation' : `activations[${i}]`, d));
    const room = this._info.maxTokens - this._info.promptTokens;
    if (o.maxTokens > room)
      throw new NlaError('ERR_NLA_CONTEXT_OVERFLOW', `maxTokens ${o.maxTokens} does not fit: the AV prompt takes ${this._info.promptTokens} of the ${this._info.maxTokens} tokens a sequence may hold, leaving ${room}`);
    checkSignal(o.signal);
    const flag = new Int32Array(new SharedArrayBuffer(4));
    const onAbort = () => Atomics.store(flag, 0, 1);
    o.signal?.addEventListener('abort', onAbort, { once: true });
    const job = this.queue.then(async () => {
      checkSignal(o.signal);
      try {
        const res = await this.verbalizer.generate(
          acts,
          { maxTokens: o.maxTokens, temperature: o.temperature, topK: o.topK, topP: o.topP, seed: o.seed, stop: o.stop },
          onToken,
          flag,
        );
        return res.map((r): Verbalization => {
          let text = this.native.decode(r.tokens, false);
          if (r.finish === 'stop' && o.stop) {
            const cut = Math.min(...o.stop.map((s) => text.indexOf(s)).filter((i) => i >= 0));
            if (Number.isFinite(cut)) text = text.slice(0, cut);
          }
          return { text, explanation: extractExplanation(text), tokens: r.tokens, finishReason: r.finish };
        });
      } catch (e) {
        const err = toNlaError(e);
        if (err.code === 'ERR_NLA_ABORTED') throw new NlaError('ERR_NLA_ABORTED', 'the operation was aborted', { cause: o.signal?.reason });
        throw err;
      }
    });
    this.queue = job.catch(() => undefined);
    return job.finally(() => o.signal?.removeEventListener('abort', onAbort));
  }
}

/**
 * Degeneracy and diversity of a set of verbalizations (what the NLA authors report for AV collapse): the share
 * of empty texts, of exact duplicates (texts that occurred before), and of distinct prefixes at 40/80/120/200
 * characters and of distinct full texts, each over the number of texts.
 */
export function verbalizationStats(texts: readonly string[]): {
  n: number;
  emptyRate: number;
  duplicateRate: number;
  uniquePrefixes: { 40: number; 80: number; 120: number; 200: number; full: number };
} {
  if (!Array.isArray(texts) || texts.some((t) => typeof t !== 'string'))
    throw new NlaError('ERR_NLA_INVALID_ARG', 'verbalizationStats needs an array of strings');
  const n = texts.length;
  const rate = (k: number) => (n === 0 ? 0 : k / n);
  const distinct = (len: number) => new Set(texts.map((t) => (len === Infinity ? t : t.slice(0, len)))).size;
  const full = distinct(Infinity);
  return {
    n,
    emptyRate: rate(texts.filter((t) => t.trim() === '').length),
    duplicateRate: rate(n - full),
    uniquePrefixes: { 40: rate(distinct(40)), 80: rate(distinct(80)), 120: rate(distinct(120)), 200: rate(distinct(200)), full: rate(full) },
  };
}

// Compile-time: each interface is exactly what its schema accepts (input) and returns (output).
type Same<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
function sameTypes<_ extends true[]>(): void {}
sameTypes<[
  Same<z.input<typeof VerbalizerLoadOptionsZod>, VerbalizerLoadOptions>,
  Same<z.output<typeof VerbalizerLoadOptionsZod>, ResolvedVerbalizerOptions>,
  Same<z.input<typeof VerbalizeOptionsZod>, VerbalizeOptions>,
  Same<z.output<typeof VerbalizeOptionsZod>, ResolvedVerbalizeOptions>,
]>();
