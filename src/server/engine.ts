/**
 * The engine the server, `eval` and the queue workers drive: the AR (a Reconstructor) and, when one is loaded, the
 * verbalizer (AV) behind the small internal `VerbalizerLike` type. The AV is not part of this build yet:
 * `loadVerbalizer` refuses with ERR_NLA_NOT_IMPLEMENTED, and nothing here ever makes up AV output. Wiring the real
 * `Verbalizer` is confined to `loadVerbalizer` (see the comment there).
 */
import { Reconstructor } from '../reconstructor';
import { DEFAULT_ACTIVATION_LAYER } from '../options';
import { ServiceError } from './errors';

export interface VerbalizeParams {
  maxTokens?: number;
  temperature?: number;
  topK?: number;
  topP?: number;
  seed?: number;
}

export interface Verbalization {
  /** The raw generated text (what the released scripts pass to the AR). */
  text: string;
  /** The text between <explanation> tags when present, else the text. */
  explanation: string;
  /** Number of generated tokens. */
  tokens: number;
  finishReason: 'eos' | 'length' | 'stop';
}

/** What the serving layer needs of a verbalizer; the lead's `Verbalizer` (issue 10) has this shape. */
export interface VerbalizerLike {
  verbalize(activations: Float32Array[], options: VerbalizeParams & { signal?: AbortSignal }): Promise<Verbalization[]>;
  /** Prompt length in tokens (for the batch token budget). */
  readonly promptTokens: number;
  close(): Promise<void>;
}

export interface EngineOptions {
  model: string;
  ar: string;
  av?: string;
  /** AR block (default the released pair's 17). */
  layer?: number;
  device?: 'auto' | 'cpu' | 'cuda';
  threads?: number;
}

/** Whether this build can load a verbalizer (flip when `loadVerbalizer` is wired to the real AV). */
export const VERBALIZER_AVAILABLE = false;

export const AV_NOT_AVAILABLE =
  'the verbalizer (AV) is not available in this build of nla-ar: only the AR (reconstruct, activation, round trips with given explanations) can be served';

/**
 * Loads the verbalizer. Until the AV lands this always refuses. To wire it:
 *   const { Verbalizer } = await import('../verbalizer');
 *   const av = await Verbalizer.load({ model, adapter: dir, device, threads });
 *   return { promptTokens: av.tokenize(av.prompt()).length, close: () => av.close(),
 *            verbalize: (acts, o) => av.verbalize(acts, o).then((rs) => rs.map((r) => ({ ...r, tokens: typeof r.tokens === 'number' ? r.tokens : r.tokens.length }))) };
 */
export async function loadVerbalizer(_o: { model: string; dir: string; device?: string; threads?: number }): Promise<VerbalizerLike> {
  throw new ServiceError('ERR_NLA_NOT_IMPLEMENTED', `--av: ${AV_NOT_AVAILABLE}`);
}

export class Engine {
  readonly ar: Reconstructor;
  readonly av: VerbalizerLike | null;
  private emptyReconstruction: Promise<Float32Array> | null = null;

  private constructor(ar: Reconstructor, av: VerbalizerLike | null) {
    this.ar = ar;
    this.av = av;
  }

  static async load(o: EngineOptions): Promise<Engine> {
    // the AV is checked first: a refused --av must not cost a model load
    const av = o.av ? await loadVerbalizer({ model: o.model, dir: o.av, device: o.device, threads: o.threads }) : null;
    try {
      const ar = await Reconstructor.load({ model: o.model, adapter: o.ar, ...(o.layer !== undefined ? { layer: o.layer } : {}), device: o.device ?? 'auto', ...(o.threads ? { threads: o.threads } : {}) });
      return new Engine(ar, av);
    } catch (e) {
      await av?.close();
      throw e;
    }
  }

  /** d_model */
  get d(): number {
    return this.ar.info.model.nEmbd;
  }

  get nLayer(): number {
    return this.ar.info.model.nLayer;
  }

  get defaultActivationLayer(): number {
    return Math.min(DEFAULT_ACTIVATION_LAYER, this.nLayer - 1);
  }

  /** Tokens of the AR prompt of an explanation. */
  explanationTokens(explanation: string): number {
    return this.ar.tokenize(this.ar.prompt(explanation)).length;
  }

  /** Tokens of a raw text (BOS included), as `activation` runs it. */
  textTokens(text: string): number {
    return this.ar.tokenize(text).length;
  }

  reconstruct(explanations: string[], signal?: AbortSignal): Promise<Float32Array[]> {
    return this.ar.reconstruct(explanations, signal ? { signal } : {});
  }

  /** AR(''): the same for every row, so the controls compute it once. */
  reconstructEmpty(): Promise<Float32Array> {
    this.emptyReconstruction ??= this.ar.reconstruct('');
    return this.emptyReconstruction;
  }

  /** The base model's block-`layer` residual at the last token of each text. */
  activations(texts: string[], layer: number, signal?: AbortSignal): Promise<Float32Array[]> {
    // activation() takes one text; the calls queue inside the Reconstructor and run back to back
    return Promise.all(texts.map((t) => this.ar.activation(t, { layer, ...(signal ? { signal } : {}) })));
  }

  verbalize(activations: Float32Array[], params: VerbalizeParams, signal?: AbortSignal): Promise<Verbalization[]> {
    if (!this.av) return Promise.reject(new ServiceError('ERR_NLA_NOT_IMPLEMENTED', AV_NOT_AVAILABLE));
    return this.av.verbalize(activations, { ...params, ...(signal ? { signal } : {}) });
  }

  async close(): Promise<void> {
    await Promise.all([this.ar.close(), this.av?.close()]);
  }
}
