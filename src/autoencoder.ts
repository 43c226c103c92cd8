/**
 * Autoencoder: the whole NLA round trip on ONE base model in memory — the base model's activation of a text,
 * the verbalizer's (AV) explanation of it, the reconstructor's (AR) reconstruction of that explanation, and the
 * metrics. Both adapters are loaded on the one mapped GGUF (the released scripts load the base model three
 * times); the AV and the AR keep sessions of their own.
 */
import { z } from 'zod';
import { NlaError } from './errors';
import { cosine, directionMse, type Vector } from './metrics';
import { openBaseModel } from './model';
import { DEFAULT_ACTIVATION_LAYER, DEFAULT_AR_LAYER, LoadOptionsSchema, parseOptions, type ActivationOptions, type CallOptions, type HeadLike, type OptionsSchema } from './options';
import type { InjectionScale } from './sidecar';
import { Reconstructor } from './reconstructor';
import { Verbalizer, VerbalizerLoadOptionsSchema, type MarkerIds, type Verbalization, type VerbalizeOptions } from './verbalizer';
import { verbalizerZodFields } from './verbalizer-zod';

export interface AutoencoderLoadOptions {
  /** Base model: a llama.cpp GGUF with general.architecture = gemma4 (mapped once for both adapters). */
  model: string;
  /** The verbalizer's PEFT folder. */
  av: string;
  /** The reconstructor's PEFT folder (with linear_head.pt unless `head` is given). */
  ar: string;
  head?: string | HeadLike;
  /** The AR's block (default 17). */
  layer?: number;
  /** The base model's block whose activation the round trip encodes (default 23, or the last block of a smaller model). */
  activationLayer?: number;
  arTemplate?: string;
  avTemplate?: string;
  explanation?: 'raw' | 'extract';
  marker?: MarkerIds;
  injectionScale?: InjectionScale;
  maxTokens?: number;
  device?: 'auto' | 'cpu' | 'cuda';
  threads?: number;
  numerics?: 'exact' | 'llamacpp';
}

interface ResolvedAutoencoderOptions {
  model: string;
  av: string;
  ar: string;
  head?: string | HeadLike;
  layer: number;
  activationLayer?: number;
  arTemplate?: string;
  avTemplate?: string;
  explanation: 'raw' | 'extract';
  marker?: MarkerIds;
  injectionScale?: InjectionScale;
  maxTokens?: number;
  device: 'auto' | 'cpu' | 'cuda';
  threads?: number;
  numerics: 'exact' | 'llamacpp';
}

const AutoencoderLoadOptionsZod = z.strictObject({
  model: z.string().min(1),
  av: z.string().min(1),
  ar: z.string().min(1),
  head: z
    .union([
      z.string().min(1),
      z.custom<HeadLike>((v) => typeof v === 'object' && v !== null && typeof (v as { apply?: unknown }).apply === 'function', {
        error: 'head must be a path or a LinearHead',
      }),
    ])
    .optional(),
  layer: z.int().min(0).max(4096).default(DEFAULT_AR_LAYER),
  activationLayer: z.int().min(0).max(4096).optional(),
  arTemplate: z
    .string()
    .refine((t) => t.split('{explanation}').length === 2, { error: 'template must contain {explanation} exactly once' })
    .optional(),
  avTemplate: verbalizerZodFields.template,
  explanation: z.enum(['raw', 'extract']).default('raw'),
  marker: verbalizerZodFields.marker,
  injectionScale: verbalizerZodFields.injectionScale,
  maxTokens: z.int().min(1).optional(),
  device: z.enum(['auto', 'cpu', 'cuda']).default('auto'),
  threads: z.int().min(1).max(1024).optional(),
  numerics: z.enum(['exact', 'llamacpp']).default('exact'),
});
export const AutoencoderLoadOptionsSchema: OptionsSchema<ResolvedAutoencoderOptions> = AutoencoderLoadOptionsZod;

export interface AutoencoderRoundTrip {
  /** The base model's activation (block activationLayer, last token of the text), or the one given. */
  activation: Float32Array;
  /** The AV's decoded text, passed to the AR as it is (the released scripts' protocol). */
  text: string;
  /** The text between its <explanation> tags. */
  explanation: string;
  finishReason: Verbalization['finishReason'];
  reconstruction: Float32Array;
  /** cos(reconstruction, activation) */
  cosine: number;
  /** Direction-MSE at scale √d = 2(1 − cos). */
  mse: number;
}

export type RoundTripItem = string | { activation: Vector };

export class Autoencoder implements AsyncDisposable {
  /** The AV (on the shared model). */
  readonly verbalizer: Verbalizer;
  /** The AR (on the shared model). */
  readonly reconstructor: Reconstructor;
  private readonly activationLayer: number;
  private readonly closeModel: () => void;
  private closing: Promise<void> | null = null;

  private constructor(av: Verbalizer, ar: Reconstructor, activationLayer: number, closeModel: () => void) {
    this.verbalizer = av;
    this.reconstructor = ar;
    this.activationLayer = activationLayer;
    this.closeModel = closeModel;
  }

  static async load(options: AutoencoderLoadOptions): Promise<Autoencoder> {
    const o = parseOptions(AutoencoderLoadOptionsSchema, options, 'Autoencoder.load options');
    const opened = await openBaseModel(o);
    let av: Verbalizer | undefined;
    try {
      const nLayer = opened.native.info().nLayer;
      const activationLayer = o.activationLayer ?? Math.min(DEFAULT_ACTIVATION_LAYER, nLayer - 1);
      if (activationLayer >= nLayer)
        throw new NlaError('ERR_NLA_INVALID_ARG', `activationLayer ${activationLayer} does not exist: the model has ${nLayer} blocks`);
      av = await Verbalizer.attach(
        opened,
        parseOptions(VerbalizerLoadOptionsSchema, {
          model: o.model, adapter: o.av, template: o.avTemplate, marker: o.marker, injectionScale: o.injectionScale,
          maxTokens: o.maxTokens, device: o.device, threads: o.threads, numerics: o.numerics,
        }, 'Autoencoder.load options'),
        false,
      );
      const ar = await Reconstructor.attach(
        opened,
        parseOptions(LoadOptionsSchema, {
          model: o.model, adapter: o.ar, head: o.head, layer: o.layer, template: o.arTemplate, explanation: o.explanation,
          maxTokens: o.maxTokens, device: o.device, threads: o.threads, numerics: o.numerics,
        }, 'Autoencoder.load options'),
        false,
      );
      return new Autoencoder(av, ar, activationLayer, () => opened.native.close());
    } catch (e) {
      if (av) await av.close();
      opened.native.close();
      throw e;
    }
  }

  /** The base model's residual-stream activation of raw text (default block 23, last token). */
  activation(text: string, options?: ActivationOptions): Promise<Float32Array>;
  activation(texts: string[], options?: ActivationOptions): Promise<Float32Array[]>;
  activation(texts: string | string[], options?: ActivationOptions): Promise<Float32Array | Float32Array[]> {
    const o = { layer: this.activationLayer, ...(options ?? {}) };
    return this.reconstructor.activation(texts as string[], o);
  }

  verbalize(activation: Vector, options?: VerbalizeOptions): Promise<Verbalization>;
  verbalize(activations: Vector[], options?: VerbalizeOptions): Promise<Verbalization[]>;
  verbalize(input: Vector | Vector[], options?: VerbalizeOptions): Promise<Verbalization | Verbalization[]> {
    return this.verbalizer.verbalize(input as Vector[], options);
  }

  reconstruct(explanation: string, options?: CallOptions): Promise<Float32Array>;
  reconstruct(explanations: string[], options?: CallOptions): Promise<Float32Array[]>;
  reconstruct(input: string | string[], options?: CallOptions): Promise<Float32Array | Float32Array[]> {
    return this.reconstructor.reconstruct(input as string[], options);
  }

  /**
   * The round trip: text → activation (or the activation given) → AV explanation → AR reconstruction →
   * cosine and direction-MSE against the activation. Batched: all activations, then all verbalizations decoded
   * together, then all reconstructions.
   */
  roundTrip(item: RoundTripItem, options?: VerbalizeOptions): Promise<AutoencoderRoundTrip>;
  roundTrip(items: RoundTripItem[], options?: VerbalizeOptions): Promise<AutoencoderRoundTrip[]>;
  async roundTrip(input: RoundTripItem | RoundTripItem[], options?: VerbalizeOptions): Promise<AutoencoderRoundTrip | AutoencoderRoundTrip[]> {
    const single = !Array.isArray(input);
    const items = single ? [input as RoundTripItem] : (input as RoundTripItem[]);
    const signal = options?.signal;
    items.forEach((it, i) => {
      if (typeof it !== 'string' && (typeof it !== 'object' || it === null || !('activation' in it)))
        throw new NlaError('ERR_NLA_INVALID_ARG', `roundTrip item ${i} must be a text or {activation}`);
    });
    const texts = items.map((it, i) => (typeof it === 'string' ? i : -1)).filter((i) => i >= 0);
    const fromTexts = texts.length ? await this.activation(texts.map((i) => items[i] as string), { signal }) : [];
    const acts: Float32Array[] = items.map((it) => (typeof it === 'string' ? new Float32Array(0) : Float32Array.from((it as { activation: Vector }).activation)));
    texts.forEach((i, k) => (acts[i] = fromTexts[k]));
    const verbs = await this.verbalizer.verbalize(acts, options);
    const recs = await this.reconstructor.reconstruct(verbs.map((v) => v.text), { signal });
    const out = items.map((_, i): AutoencoderRoundTrip => ({
      activation: acts[i],
      text: verbs[i].text,
      explanation: verbs[i].explanation,
      finishReason: verbs[i].finishReason,
      reconstruction: recs[i],
      cosine: cosine(recs[i], acts[i]),
      mse: directionMse(recs[i], acts[i]),
    }));
    return single ? out[0] : out;
  }

  /** Closes both halves, then the shared model. Idempotent. */
  close(): Promise<void> {
    if (!this.closing) {
      this.closing = Promise.allSettled([this.verbalizer.close(), this.reconstructor.close()]).then(() => this.closeModel());
    }
    return this.closing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

// Compile-time: the interfaces are exactly what the schema accepts and returns.
type Same<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
function sameTypes<_ extends true[]>(): void {}
sameTypes<[Same<z.input<typeof AutoencoderLoadOptionsZod>, AutoencoderLoadOptions>, Same<z.output<typeof AutoencoderLoadOptionsZod>, ResolvedAutoencoderOptions>]>();
