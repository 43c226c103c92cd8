/**
 * The engine the server, `eval` and the queue workers drive: the AR (a Reconstructor) and, when an AV folder is
 * given, the verbalizer behind the small internal `VerbalizerLike` type — both on ONE mapping of the base model
 * (an Autoencoder), each with its own session.
 */
import { Autoencoder } from '../autoencoder';
import { Reconstructor } from '../reconstructor';
import type { Verbalizer } from '../verbalizer';
import { DEFAULT_ACTIVATION_LAYER } from '../options';
import { ServiceError } from './errors';

export interface VerbalizeParams {
  maxTokens?: number;
  temperature?: number;
  topK?: number;
  topP?: number;
  /** Item i of one call samples with seed + i (the Verbalizer's rule). */
  seed?: number;
  stop?: string[];
}

/** The AV's length limit when none is given (the released scripts' 120). */
export const DEFAULT_AV_MAX_TOKENS = 120;

export interface Verbalization {
  /** The raw generated text (what the released scripts pass to the AR). */
  text: string;
  /** The text between <explanation> tags when present, else the text. */
  explanation: string;
  /** The generated token ids (the end-of-generation token excluded). */
  tokenIds: number[];
  finishReason: 'eos' | 'length' | 'stop';
}

/** What the serving layer needs of a verbalizer. */
export interface VerbalizerLike {
  verbalize(activations: Float32Array[], options: VerbalizeParams & { signal?: AbortSignal }): Promise<Verbalization[]>;
  /** Prompt length in tokens (for the batch token budget). */
  readonly promptTokens: number;
  /** What looks wrong but loaded (e.g. an AR adapter given as the AV). */
  readonly warnings: readonly string[];
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

/** Whether this build can load a verbalizer. */
export const VERBALIZER_AVAILABLE = true;

export const AV_NOT_AVAILABLE = 'no verbalizer (AV) was loaded: start with --av DIR';

/** The serving layer's view of a Verbalizer. */
export function verbalizerLike(av: Verbalizer): VerbalizerLike {
  return {
    promptTokens: av.info.promptTokens,
    warnings: av.info.warnings,
    close: () => av.close(),
    verbalize: async (acts, o) =>
      (await av.verbalize(acts, o)).map((r) => ({ text: r.text, explanation: r.explanation, tokenIds: Array.from(r.tokens), finishReason: r.finishReason })),
  };
}

export class Engine {
  readonly ar: Reconstructor;
  readonly av: VerbalizerLike | null;
  private emptyReconstruction: Promise<Float32Array> | null = null;

  private readonly closeAll: () => Promise<void>;

  private constructor(ar: Reconstructor, av: VerbalizerLike | null, closeAll: () => Promise<void>) {
    this.ar = ar;
    this.av = av;
    this.closeAll = closeAll;
  }

  static async load(o: EngineOptions): Promise<Engine> {
    const common = { ...(o.layer !== undefined ? { layer: o.layer } : {}), device: o.device ?? 'auto', ...(o.threads ? { threads: o.threads } : {}) };
    if (o.av) {
      // activationLayer 0: the Autoencoder's own default (23) would refuse models with fewer blocks (the tests'
      // 8-block demo), and the engine never uses it: every activation call names its layer
      const nla = await Autoencoder.load({ model: o.model, av: o.av, ar: o.ar, activationLayer: 0, ...common });
      return new Engine(nla.reconstructor, verbalizerLike(nla.verbalizer), () => nla.close());
    }
    const ar = await Reconstructor.load({ model: o.model, adapter: o.ar, ...common });
    return new Engine(ar, null, () => ar.close());
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
    return this.ar.activation(texts, { layer, ...(signal ? { signal } : {}) });
  }

  verbalize(activations: Float32Array[], params: VerbalizeParams, signal?: AbortSignal): Promise<Verbalization[]> {
    if (!this.av) return Promise.reject(new ServiceError('ERR_NLA_NOT_IMPLEMENTED', AV_NOT_AVAILABLE));
    return this.av.verbalize(activations, { ...params, ...(signal ? { signal } : {}) });
  }

  close(): Promise<void> {
    return this.closeAll();
  }
}
