/**
 * Reconstructor: the Activation Reconstructor (AR) of the Gemma-4-E2B NLA.
 * explanation → AR prompt → blocks 0..L of Gemma-4 with the LoRA → block-L output at the last
 * token → fp32 linear head → reconstructed activation.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { NlaError } from './errors';
import { ActivationVector } from './vector';
import { LinearHead, applyHead, checkHeadForModel, type HeadLike } from './head';
import { loadLinearHead } from './head-file';
import { cosine, directionMse, fve, baselineMse, type Vector } from './metrics';
import { toTokenIds } from './tokenizer';
import { gibberishLike, summarizeControls, type ControlsSummary } from './controls';
import { loadAdapterDir, openBaseModel, type OpenedModel } from './model';
import { readSidecar } from './sidecar';
import {
  toNlaError,
  type NativeAdapter,
  type NativeAdapterInfo,
  type NativeHead,
  type NativeModel,
  type NativeModelInfo,
  type NativeSession,
} from './native';
import {
  DEFAULT_TEMPLATE,
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
import { resolvePretrainedLoad, type PretrainedLoadOptions } from './hub';

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
function checkFinite<T extends { data: Float32Array }>(states: T[], layer: number, adapter: boolean): T[] {
  for (const h of states)
    for (let i = 0; i < h.data.length; i++)
      if (!Number.isFinite(h.data[i]))
        throw new NlaError(
          adapter ? 'ERR_NLA_ADAPTER_INVALID' : 'ERR_NLA_MODEL_INVALID',
          `the block-${layer} output holds ${h.data[i]} (value ${i}): the ${adapter ? "adapter's LoRA deltas (with the model's weights)" : "model's weights"} overflow float32 on this input`,
        );
  return states;
}

export class Reconstructor implements AsyncDisposable {
  private readonly native: NativeModel;
  /** This instance's state on the model (its scratch, its one-shot sequences). */
  private readonly session: NativeSession;
  private readonly nativeAdapter: NativeAdapter | null;
  /** The head in the engine, when it is a LinearHead (then the whole request is one native job). */
  private readonly nativeHead: NativeHead | null;
  private readonly opts: ResolvedLoadOptions;
  private readonly _info: ReconstructorInfo;
  private readonly _head: LinearHead | null;
  private queue: Promise<unknown> = Promise.resolve();
  private inFlight = 0;
  private closed = false;
  private closing: Promise<void> | null = null;
  /** Whether close() closes the model too (false when an Autoencoder shares it). */
  private readonly ownsModel: boolean;
  private readonly template: string;

  private constructor(
    native: NativeModel,
    adapter: NativeAdapter | null,
    head: LinearHead | null,
    nativeHead: NativeHead | null,
    headPath: string | null,
    opts: ResolvedLoadOptions,
    template: string,
    backend: 'cpu' | 'cuda',
    reasons: string[],
    ownsModel: boolean,
  ) {
    this.native = native;
    this.nativeAdapter = adapter;
    this._head = head;
    this.nativeHead = nativeHead;
    this.opts = opts;
    this.template = template;
    this.ownsModel = ownsModel;
    const model = native.info();
    this.session = native.createSession({ maxTokens: Math.min(opts.maxTokens ?? model.nCtxTrain, model.nCtxTrain) });
    this._info = {
      backend,
      backendReasons: reasons,
      backendDescription: model.backendDescription,
      model,
      adapter: adapter ? adapter.info() : null,
      head: head ? { path: headPath, inDim: head.inDim, outDim: head.outDim } : null,
      layer: opts.layer,
      template,
      explanation: opts.explanation,
      numerics: opts.numerics,
      maxTokens: Math.min(opts.maxTokens ?? model.nCtxTrain, model.nCtxTrain),
    };
  }

  /** Loads the base GGUF, the adapter folder and the head. Options are validated strictly. */
  static async load(options: LoadOptions): Promise<Reconstructor> {
    const opts = parseOptions(LoadOptionsSchema, options, 'Reconstructor.load options');
    if (opts.adapter && !fs.existsSync(opts.adapter)) throw new NlaError('ERR_NLA_IO', `adapter folder not found: ${opts.adapter}`);
    const opened = await openBaseModel(opts);
    try {
      return await Reconstructor.attach(opened, opts, true);
    } catch (e) {
      opened.native.close();
      throw e;
    }
  }

  /**
   * @internal A Reconstructor on an already opened model (the Autoencoder's shared base model). With
   * ownsModel false, close() leaves the model open.
   */
  static async attach(opened: OpenedModel, opts: ResolvedLoadOptions, ownsModel: boolean): Promise<Reconstructor> {
    const { native, binding, backend, reasons } = opened;
    {
      const info = native.info();
      if (opts.layer >= info.nLayer)
        throw new NlaError('ERR_NLA_INVALID_ARG', `layer ${opts.layer} does not exist: the model has ${info.nLayer} blocks (0..${info.nLayer - 1})`);
      const adapter: NativeAdapter | null = opts.adapter ? await loadAdapterDir(native, opts.adapter) : null;
      const sidecar = opts.adapter ? readSidecar(opts.adapter) : undefined;
      const template = opts.template ?? sidecar?.arTemplate ?? DEFAULT_TEMPLATE;
      if (template.split('{explanation}').length !== 2)
        throw new NlaError('ERR_NLA_INVALID_ARG', `the AR template${opts.template ? '' : ` of ${sidecar?.path}`} must contain {explanation} exactly once`);
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
      const nativeHead = head instanceof LinearHead ? binding.createHead(head.weight, head.bias, head.inDim, head.outDim) : null;
      // the blocks the AR runs, read ahead in large sequential reads (a cold page cache otherwise faults them in page by page)
      await native.prefetch(opts.layer);
      return new Reconstructor(native, adapter, head, nativeHead, headPath, opts, template, backend, reasons, ownsModel);
    }
  }

  /**
   * Loads the AR from a Hugging Face repository holding the published PEFT folder (adapter_config.json,
   * adapter_model.safetensors, linear_head.pt), e.g. 'Solshine/gemma-4-e2b-nla-L23-ar-v0_0_1', downloaded into the
   * Hugging Face cache on first use and read from it afterwards without any network call. `model` is a GGUF path
   * or an `hf:OWNER/REPO[@REVISION]/FILE.gguf` URI; `hub` sets the revision, token, progress callback and signal;
   * the other options are load()'s.
   */
  static async fromPretrained(repo: string, options: PretrainedLoadOptions): Promise<Reconstructor> {
    const { load, model, adapter } = await resolvePretrainedLoad(repo, 'reconstructor', options);
    return Reconstructor.load({ ...load, model, adapter });
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
    const [before, after] = this.template.split('{explanation}');
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
    this.assertOpen();
    const o = parseOptions(CallOptionsSchema, options, 'reconstruct options');
    const single = !Array.isArray(explanations);
    const list = single ? [explanations as string] : (explanations as string[]);
    const head = this.head;
    const prompts = list.map((e, i) => this.prompt(checkText(e, single ? 'explanation' : `explanations[${i}]`)));
    const layer = this.opts.layer;
    const adapter = this.nativeAdapter ?? undefined;
    let out: Float32Array[];
    if (this.nativeHead) {
      // one native job: tokens, batched passes, the head (a non-finite state is reported as the weights' fault there)
      const nativeHead = this.nativeHead;
      out = (await this.run((flag) => this.session.reconstruct(prompts, { layer, adapter, head: nativeHead }, flag), o.signal)).map(ActivationVector.view);
    } else {
      const states = await this.run((flag) => this.session.hiddenStates(prompts, { layer, adapter }, flag), o.signal);
      out = checkFinite(states, layer, adapter !== undefined).map((h) => applyHead(head as HeadLike, h.data));
    }
    return single ? out[0] : out;
  }

  /** Block output (before the head) for a text. Defaults: AR template, adapter on, AR layer, last token. */
  async hiddenState(text: string, options?: HiddenStateOptions): Promise<Float32Array> {
    this.assertOpen();
    const o = parseOptions(HiddenStateOptionsSchema, options, 'hiddenState options');
    checkText(text, 'text');
    const prompt = o.template ? this.prompt(text) : text;
    const layer = o.layer ?? this.opts.layer;
    this.checkLayer(layer);
    const adapter = o.adapter && this.nativeAdapter ? this.nativeAdapter : undefined;
    const [h] = checkFinite(await this.run((flag) => this.session.hiddenStates([prompt], { layer, adapter, allTokens: o.positions === 'all' }, flag), o.signal), layer, adapter !== undefined);
    return ActivationVector.view(h.data);
  }

  /**
   * The base model's residual-stream activation for raw text (no template, no adapter): the block-`layer`
   * output (default 23) at the last token. This is what the NLA's verbalizer explains.
   */
  activation(text: string, options?: ActivationOptions): Promise<Float32Array>;
  activation(texts: string[], options?: ActivationOptions): Promise<Float32Array[]>;
  async activation(texts: string | string[], options?: ActivationOptions): Promise<Float32Array | Float32Array[]> {
    this.assertOpen();
    const o = parseOptions(ActivationOptionsSchema, options, 'activation options');
    const single = !Array.isArray(texts);
    const list = single ? [texts as string] : (texts as string[]);
    list.forEach((t, i) => checkText(t, single ? 'text' : `texts[${i}]`));
    this.checkLayer(o.layer);
    const layer = o.layer;
    const states = checkFinite(await this.run((flag) => this.session.hiddenStates(list, { layer }, flag), o.signal), layer, false);
    const out = states.map((h) => ActivationVector.view(h.data));
    return single ? out[0] : out;
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
      const release = () => {
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

  // ------------------------------------------------------------------ internals

  private assertOpen(): void {
    if (this.closed) throw new NlaError('ERR_NLA_CLOSED', 'this Reconstructor was closed');
  }

  private checkLayer(layer: number): void {
    if (layer >= this._info.model.nLayer)
      throw new NlaError('ERR_NLA_INVALID_ARG', `layer ${layer} does not exist: the model has ${this._info.model.nLayer} blocks`);
  }

  /** Queues one native job; calls on one instance run one at a time, in order. */
  private run<T>(job: (abortFlag: Int32Array) => Promise<T>, signal?: AbortSignal): Promise<T> {
    this.assertOpen();
    checkSignal(signal);
    const flag = new Int32Array(new SharedArrayBuffer(4));
    const onAbort = () => Atomics.store(flag, 0, 1);
    signal?.addEventListener('abort', onAbort, { once: true });
    this.inFlight++;
    const p = this.queue.then(async () => {
      checkSignal(signal);
      try {
        return await job(flag);
      } catch (e) {
        const err = toNlaError(e);
        if (err.code === 'ERR_NLA_ABORTED') throw new NlaError('ERR_NLA_ABORTED', 'the operation was aborted', { cause: signal?.reason });
        throw err;
      }
    });
    this.queue = p.catch(() => undefined);
    return p.finally(() => {
      this.inFlight--;
      signal?.removeEventListener('abort', onAbort);
    });
  }
}

