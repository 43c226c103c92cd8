/**
 * Reconstructor: the Activation Reconstructor (AR) of the Gemma-4-E2B NLA.
 * explanation → AR prompt → blocks 0..L of Gemma-4 with the LoRA → block-L output at the last
 * token → fp32 linear head → reconstructed activation.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { NlaError } from './errors';
import { LinearHead, applyHead, checkHeadForModel, type HeadLike } from './head';
import { loadLinearHead } from './head-file';
import { cosine, directionMse, fve, baselineMse, type Vector } from './metrics';
import { toTokenIds } from './tokenizer';
import { gibberishLike, summarizeControls, type ControlsSummary } from './controls';
import { loadNative, toNlaError, type NativeAdapter, type NativeAdapterInfo, type NativeModel, type NativeModelInfo } from './native';
import {
  ActivationOptionsSchema,
  CallOptionsSchema,
  HiddenStateOptionsSchema,
  LoadOptionsSchema,
  RoundTripOptionsSchema,
  TokenizeOptionsSchema,
  parseOptions,
  type ActivationOptions,
  type CallOptions,
  type HiddenStateOptions,
  type LoadOptions,
  type ResolvedLoadOptions,
  type RoundTripOptions,
  type TokenizeOptions,
} from './options';

export interface ReconstructorInfo {
  /** 'cpu' or 'cuda', and why that backend was chosen. */
  backend: 'cpu' | 'cuda';
  backendReasons: string[];
  backendDescription: string;
  model: NativeModelInfo;
  adapter: NativeAdapterInfo | null;
  head: { path: string | null; inDim: number; outDim: number } | null;
  layer: number;
  template: string;
  explanation: 'raw' | 'extract';
  numerics: 'exact' | 'llamacpp';
  maxTokens: number;
}

export interface RoundTripInput {
  /** The original activation (e.g. the base model's layer-23 residual at one token). */
  activation: Vector;
  /** The verbalizer's explanation of it. */
  explanation: string;
}

export interface RoundTripResult {
  reconstruction: Float32Array;
  /** cos(reconstruction, activation) */
  cosine: number;
  /** Direction-MSE at scale √d = 2(1 − cos). */
  mse: number;
  /** 1 − mse / baseline, present when `mean` was given. */
  fve?: number;
  /** Direction-MSE of the mean predictor, present when `mean` was given. */
  baselineMse?: number;
}

function checkText(x: unknown, what: string): string {
  if (typeof x !== 'string') throw new NlaError('ERR_NLA_INVALID_ARG', `${what} must be a string, got ${x === null ? 'null' : typeof x}`);
  return x;
}

function checkSignal(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new NlaError('ERR_NLA_ABORTED', 'the operation was aborted', { cause: signal.reason });
}

/**
 * A non-finite block output comes from the weights, never from the caller's text: blame the adapter when one was
 * applied (its validated numbers can still overflow float32 together), else the model.
 */
function checkFinite<T extends { layer: number; data: Float32Array }[][]>(caps: T, adapter: boolean): T {
  for (const perPrompt of caps)
    for (const c of perPrompt)
      for (let i = 0; i < c.data.length; i++)
        if (!Number.isFinite(c.data[i]))
          throw new NlaError(
            adapter ? 'ERR_NLA_ADAPTER_INVALID' : 'ERR_NLA_MODEL_INVALID',
            `the block-${c.layer} output holds ${c.data[i]} (value ${i}): the ${adapter ? "adapter's LoRA deltas (with the model's weights)" : "model's weights"} overflow float32 on this input`,
          );
  return caps;
}

export class Reconstructor implements AsyncDisposable {
  private readonly native: NativeModel;
  private readonly nativeAdapter: NativeAdapter | null;
  private readonly opts: ResolvedLoadOptions;
  private readonly _info: ReconstructorInfo;
  private readonly _head: LinearHead | null;
  private queue: Promise<unknown> = Promise.resolve();
  private inFlight = 0;
  private closed = false;
  private closing: Promise<void> | null = null;

  private constructor(
    native: NativeModel,
    adapter: NativeAdapter | null,
    head: LinearHead | null,
    headPath: string | null,
    opts: ResolvedLoadOptions,
    backend: 'cpu' | 'cuda',
    reasons: string[],
  ) {
    this.native = native;
    this.nativeAdapter = adapter;
    this._head = head;
    this.opts = opts;
    const model = native.info();
    this._info = {
      backend,
      backendReasons: reasons,
      backendDescription: model.backendDescription,
      model,
      adapter: adapter ? adapter.info() : null,
      head: head ? { path: headPath, inDim: head.inDim, outDim: head.outDim } : null,
      layer: opts.layer,
      template: opts.template,
      explanation: opts.explanation,
      numerics: opts.numerics,
      maxTokens: Math.min(opts.maxTokens ?? model.nCtxTrain, model.nCtxTrain),
    };
  }

  /** Loads the base GGUF, the adapter folder and the head. Options are validated strictly. */
  static async load(options: LoadOptions): Promise<Reconstructor> {
    const opts = parseOptions(LoadOptionsSchema, options, 'Reconstructor.load options');
    const { binding, backend, reasons } = loadNative(opts.device);
    if (!fs.existsSync(opts.model)) throw new NlaError('ERR_NLA_IO', `model file not found: ${opts.model}`);
    if (opts.adapter && !fs.existsSync(opts.adapter)) throw new NlaError('ERR_NLA_IO', `adapter folder not found: ${opts.adapter}`);
    let native: NativeModel;
    try {
      native = await binding.openModel(opts.model, {
        threads: opts.threads,
        device: backend,
        gelu: opts.numerics === 'llamacpp' ? 'fp16-table' : 'exact',
      });
    } catch (e) {
      throw toNlaError(e);
    }
    try {
      const info = native.info();
      if (opts.layer >= info.nLayer)
        throw new NlaError('ERR_NLA_INVALID_ARG', `layer ${opts.layer} does not exist: the model has ${info.nLayer} blocks (0..${info.nLayer - 1})`);
      let adapter: NativeAdapter | null = null;
      if (opts.adapter) {
        try {
          adapter = await native.loadAdapter(opts.adapter);
        } catch (e) {
          throw toNlaError(e);
        }
      }
      let head: LinearHead | null = null;
      let headPath: string | null = null;
      if (opts.head !== undefined && typeof opts.head !== 'string') {
        head = opts.head as LinearHead;
      } else {
        headPath = typeof opts.head === 'string' ? opts.head : opts.adapter ? path.join(opts.adapter, 'linear_head.pt') : null;
        if (headPath) {
          if (!fs.existsSync(headPath)) {
            if (typeof opts.head === 'string') throw new NlaError('ERR_NLA_IO', `head file not found: ${headPath}`);
            headPath = null; // an adapter folder without a head: reconstruct() will say so
          } else {
            head = await loadLinearHead(headPath, { inDim: info.nEmbd, outDim: info.nEmbd });
          }
        }
      }
      if (head) checkHeadForModel(head as HeadLike, info.nEmbd);
      return new Reconstructor(native, adapter, head, headPath, opts, backend, reasons);
    } catch (e) {
      native.close();
      throw e;
    }
  }

  get info(): ReconstructorInfo {
    return this._info;
  }

  /** The fp32 linear head (throws ERR_NLA_HEAD_INVALID if none was loaded). */
  get head(): LinearHead {
    if (!this._head) throw new NlaError('ERR_NLA_HEAD_INVALID', 'no linear head: pass `head` or an adapter folder containing linear_head.pt');
    return this._head;
  }

  /** The AR prompt for an explanation (after the `explanation` option is applied). */
  prompt(explanation: string): string {
    let text = checkText(explanation, 'explanation');
    if (this.opts.explanation === 'extract') {
      const m = /<explanation>([\s\S]*?)<\/explanation>/.exec(text);
      if (m) text = m[1].trim();
    }
    const [before, after] = this.opts.template.split('{explanation}');
    return before + text + after;
  }

  /** Token ids of `text` (BOS first by default). Synchronous: tokenizing is fast. */
  tokenize(text: string, options?: TokenizeOptions): Int32Array {
    this.assertOpen();
    const o = parseOptions(TokenizeOptionsSchema, options, 'tokenize options');
    try {
      return this.native.tokenize(checkText(text, 'text'), o.bos, o.special);
    } catch (e) {
      throw toNlaError(e);
    }
  }

  /** Text of token ids. */
  decode(ids: Int32Array | number[], options?: { special?: boolean }): string {
    this.assertOpen();
    try {
      return this.native.decode(toTokenIds(ids), options?.special ?? false);
    } catch (e) {
      throw toNlaError(e);
    }
  }

  /** Reconstructs the activation an explanation describes: head(block-L output at the last token). */
  reconstruct(explanation: string, options?: CallOptions): Promise<Float32Array>;
  reconstruct(explanations: string[], options?: CallOptions): Promise<Float32Array[]>;
  async reconstruct(explanations: string | string[], options?: CallOptions): Promise<Float32Array | Float32Array[]> {
    const o = parseOptions(CallOptionsSchema, options, 'reconstruct options');
    const single = !Array.isArray(explanations);
    const list = single ? [explanations as string] : (explanations as string[]);
    const head = this.head;
    const prompts = list.map((e, i) => this.tokenizePrompt(this.prompt(checkText(e, single ? 'explanation' : `explanations[${i}]`))));
    const states = await this.lastTokenStates(prompts, this.opts.layer, true, o.signal);
    const out = states.map((h) => applyHead(head as HeadLike, h));
    return single ? out[0] : out;
  }

  /** Block output (before the head) for a text. Defaults: AR template, adapter on, AR layer, last token. */
  async hiddenState(text: string, options?: HiddenStateOptions): Promise<Float32Array> {
    const o = parseOptions(HiddenStateOptionsSchema, options, 'hiddenState options');
    checkText(text, 'text');
    const ids = this.tokenizePrompt(o.template ? this.prompt(text) : text);
    const layer = o.layer ?? this.opts.layer;
    this.checkLayer(layer);
    const caps = await this.run([ids], { lastLayer: layer, captureLayers: [layer], allTokens: o.positions === 'all', adapter: o.adapter }, o.signal);
    return caps[0][0].data;
  }

  /**
   * The base model's residual-stream activation for raw text (no template, no adapter): the block-`layer`
   * output (default 23) at the last token. This is what the NLA's verbalizer explains.
   */
  async activation(text: string, options?: ActivationOptions): Promise<Float32Array> {
    const o = parseOptions(ActivationOptionsSchema, options, 'activation options');
    const ids = this.tokenizePrompt(checkText(text, 'text'));
    this.checkLayer(o.layer);
    const caps = await this.run([ids], { lastLayer: o.layer, captureLayers: [o.layer], allTokens: false, adapter: false }, o.signal);
    return caps[0][0].data;
  }

  /** Reconstructs each explanation and compares it with its original activation. */
  roundTrip(input: RoundTripInput, options?: RoundTripOptions): Promise<RoundTripResult>;
  roundTrip(input: RoundTripInput[], options?: RoundTripOptions): Promise<RoundTripResult[]>;
  async roundTrip(input: RoundTripInput | RoundTripInput[], options?: RoundTripOptions): Promise<RoundTripResult | RoundTripResult[]> {
    const o = parseOptions(RoundTripOptionsSchema, options, 'roundTrip options');
    const single = !Array.isArray(input);
    const items = single ? [input as RoundTripInput] : (input as RoundTripInput[]);
    const d = this._info.model.nEmbd;
    items.forEach((it, i) => {
      const where = single ? 'roundTrip input' : `roundTrip input[${i}]`;
      if (typeof it !== 'object' || it === null) throw new NlaError('ERR_NLA_INVALID_ARG', `${where} must be {activation, explanation}`);
      checkText(it.explanation, `${where}.explanation`);
      const a = it.activation as unknown;
      if (!(a instanceof Float32Array || a instanceof Float64Array || Array.isArray(a)))
        throw new NlaError('ERR_NLA_INVALID_ARG', `${where}.activation must be a Float32Array, Float64Array or number[]`);
      if (it.activation.length !== d)
        throw new NlaError('ERR_NLA_INVALID_ARG', `${where}.activation has ${it.activation.length} values, expected d_model = ${d}`);
      for (let k = 0; k < d; k++)
        if (!Number.isFinite(it.activation[k])) throw new NlaError('ERR_NLA_INVALID_ARG', `${where}.activation[${k}] is not finite`);
    });
    if (o.mean && o.mean.length !== d) throw new NlaError('ERR_NLA_INVALID_ARG', `mean has ${o.mean.length} values, expected ${d}`);
    const recs = await this.reconstruct(items.map((it) => it.explanation), { signal: o.signal });
    const results = items.map((it, i): RoundTripResult => {
      const r: RoundTripResult = { reconstruction: recs[i], cosine: cosine(recs[i], it.activation), mse: directionMse(recs[i], it.activation) };
      if (o.mean) {
        r.baselineMse = baselineMse(it.activation, o.mean);
        r.fve = fve(recs[i], it.activation, o.mean);
      }
      return r;
    });
    return single ? results[0] : results;
  }

  /**
   * The standard NLA controls for each item: the round-trip cosine next to the cosines that an empty explanation
   * and a same-length gibberish explanation reach against the same original (nla-protocol.md §4.3). A real
   * explanation should beat both; `contentDelta` = cosine − emptyCosine.
   */
  async controls(input: RoundTripInput[], options?: RoundTripOptions & { seed?: number }): Promise<ControlsSummary> {
    const { seed, ...rest } = options ?? {};
    if (!Array.isArray(input) || input.length === 0) throw new NlaError('ERR_NLA_INVALID_ARG', 'controls needs a non-empty array of {activation, explanation}');
    const real = await this.roundTrip(input, rest);
    const empty = await this.roundTrip(input.map((it) => ({ activation: it.activation, explanation: '' })), rest);
    const gib = await this.roundTrip(input.map((it, i) => ({ activation: it.activation, explanation: gibberishLike(it.explanation, (seed ?? 1) + i) })), rest);
    return summarizeControls(real.map((r, i) => ({ cosine: r.cosine, emptyCosine: empty[i].cosine, gibberishCosine: gib[i].cosine, contentDelta: r.cosine - empty[i].cosine })));
  }

  /** Waits for calls in flight, then frees the model. Idempotent; later calls reject with ERR_NLA_CLOSED. */
  close(): Promise<void> {
    if (!this.closing) {
      this.closed = true;
      this.closing = this.queue.then(
        () => this.native.close(),
        () => this.native.close(),
      );
    }
    return this.closing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  // ------------------------------------------------------------------ internals

  private assertOpen(): void {
    if (this.closed) throw new NlaError('ERR_NLA_CLOSED', 'this Reconstructor was closed');
  }

  private checkLayer(layer: number): void {
    if (layer >= this._info.model.nLayer)
      throw new NlaError('ERR_NLA_INVALID_ARG', `layer ${layer} does not exist: the model has ${this._info.model.nLayer} blocks`);
  }

  private tokenizePrompt(text: string): Int32Array {
    const ids = this.tokenize(text);
    if (ids.length > this._info.maxTokens)
      throw new NlaError(
        'ERR_NLA_CONTEXT_OVERFLOW',
        `the prompt is ${ids.length} tokens long but at most ${this._info.maxTokens} are supported (the model's context is ${this._info.model.nCtxTrain})`,
      );
    return ids;
  }

  private async lastTokenStates(prompts: Int32Array[], layer: number, adapter: boolean, signal?: AbortSignal): Promise<Float32Array[]> {
    const caps = await this.run(prompts, { lastLayer: layer, captureLayers: [layer], allTokens: false, adapter }, signal);
    return caps.map((c) => c[0].data);
  }

  /** Queues one native forward job; calls on one instance run one at a time, in order. */
  private run(
    prompts: Int32Array[],
    o: { lastLayer: number; captureLayers: number[]; allTokens: boolean; adapter: boolean },
    signal?: AbortSignal,
  ): Promise<{ layer: number; rows: number; data: Float32Array }[][]> {
    this.assertOpen();
    checkSignal(signal);
    const flag = new Int32Array(new SharedArrayBuffer(4));
    const onAbort = () => Atomics.store(flag, 0, 1);
    signal?.addEventListener('abort', onAbort, { once: true });
    this.inFlight++;
    const job = this.queue.then(async () => {
      checkSignal(signal);
      const adapter = o.adapter && this.nativeAdapter ? this.nativeAdapter : undefined;
      try {
        return checkFinite(await this.native.forward(prompts, {
          lastLayer: o.lastLayer,
          captureLayers: o.captureLayers,
          allTokens: o.allTokens,
          adapter,
        }, flag), adapter !== undefined);
      } catch (e) {
        const err = toNlaError(e);
        if (err.code === 'ERR_NLA_ABORTED') throw new NlaError('ERR_NLA_ABORTED', 'the operation was aborted', { cause: signal?.reason });
        throw err;
      }
    });
    this.queue = job.catch(() => undefined);
    return job.finally(() => {
      this.inFlight--;
      signal?.removeEventListener('abort', onAbort);
    });
  }
}

