/** Option schemas (zod, strict: a misspelled option is an error that names it). */
import { z } from 'zod';
import { NlaError } from './errors';

export const DEFAULT_TEMPLATE = 'Summary of the following text: <text>{explanation}</text> <summary>';
/** Block whose output the released Gemma-4-E2B AR reads (AR_TRUNCATION = 18 blocks). */
export const DEFAULT_AR_LAYER = 17;
/** Layer of the residual stream the released NLA pair encodes. */
export const DEFAULT_ACTIVATION_LAYER = 23;

const headLike = z.custom<{ apply(h: Float32Array): Float32Array; inDim: number; outDim: number }>(
  (v) => typeof v === 'object' && v !== null && typeof (v as { apply?: unknown }).apply === 'function',
  { error: 'head must be a path or a LinearHead' },
);

export const LoadOptionsSchema = z.strictObject({
  /** Base model: a llama.cpp GGUF with general.architecture = gemma4. */
  model: z.string().min(1),
  /** PEFT adapter folder (adapter_config.json, adapter_model.safetensors, linear_head.pt); null: base model only. */
  adapter: z.string().min(1).nullable().optional(),
  /** Head: path to a .pt/.safetensors file or a LinearHead; default <adapter>/linear_head.pt. */
  head: z.union([z.string().min(1), headLike]).optional(),
  /** Block whose last-token output feeds the head. */
  layer: z.int().min(0).max(4096).default(DEFAULT_AR_LAYER),
  /** AR prompt; must contain {explanation} once. Default: the adapter's nla_meta.yaml template, else DEFAULT_TEMPLATE. */
  template: z
    .string()
    .refine((t) => t.split('{explanation}').length === 2, { error: 'template must contain {explanation} exactly once' })
    .optional(),
  /** 'raw' passes explanations through unchanged (what the released AR's scripts do); 'extract' keeps only the
   *  text between <explanation> and </explanation> (trimmed) when those tags are present. */
  explanation: z.enum(['raw', 'extract']).default('raw'),
  device: z.enum(['auto', 'cpu', 'cuda']).default('auto'),
  threads: z.int().min(1).max(1024).optional(),
  /** 'exact': tanh-GELU in fp32. 'llamacpp': GELU through fp16 as llama.cpp's CPU backend does (for comparisons). */
  numerics: z.enum(['exact', 'llamacpp']).default('exact'),
  /** Longest prompt accepted, in tokens (default: the model's context length). */
  maxTokens: z.int().min(1).optional(),
});
export type LoadOptions = z.input<typeof LoadOptionsSchema>;
export type ResolvedLoadOptions = z.output<typeof LoadOptionsSchema>;

export const CallOptionsSchema = z.strictObject({
  signal: z.instanceof(AbortSignal).optional(),
});
export type CallOptions = z.input<typeof CallOptionsSchema>;

export const HiddenStateOptionsSchema = z.strictObject({
  signal: z.instanceof(AbortSignal).optional(),
  /** Block to read (default: the AR layer). */
  layer: z.int().min(0).max(4096).optional(),
  /** Wrap the text in the AR template (default true). */
  template: z.boolean().default(true),
  /** Apply the adapter (default true when one is loaded). */
  adapter: z.boolean().default(true),
  /** 'last' (default) or 'all' token positions. */
  positions: z.enum(['last', 'all']).default('last'),
});
export type HiddenStateOptions = z.input<typeof HiddenStateOptionsSchema>;

export const ActivationOptionsSchema = z.strictObject({
  signal: z.instanceof(AbortSignal).optional(),
  /** Residual-stream layer (block output) of the base model; default 23, the layer the released NLA encodes. */
  layer: z.int().min(0).max(4096).default(DEFAULT_ACTIVATION_LAYER),
});
export type ActivationOptions = z.input<typeof ActivationOptionsSchema>;

export const RoundTripOptionsSchema = z.strictObject({
  signal: z.instanceof(AbortSignal).optional(),
  /** Predict-the-mean vector (see meanActivation) for FVE. */
  // z.custom, not z.instanceof: instanceof schemas type the arrays as Float64Array<ArrayBuffer>, which rejected
  // meanActivation()'s own result (Float64Array<ArrayBufferLike>) at compile time for TypeScript users
  mean: z
    .custom<Float32Array | Float64Array | number[]>(
      (v) => v instanceof Float32Array || v instanceof Float64Array || (Array.isArray(v) && v.every((x) => typeof x === 'number')),
      { error: 'mean must be a Float32Array, Float64Array or number[]' },
    )
    .optional(),
});
export type RoundTripOptions = z.input<typeof RoundTripOptionsSchema>;

export const TokenizeOptionsSchema = z.strictObject({
  bos: z.boolean().default(true),
  special: z.boolean().default(true),
});
export type TokenizeOptions = z.input<typeof TokenizeOptionsSchema>;

/** Parses with a schema, turning failures into ERR_NLA_INVALID_ARG that names the offending option. */
export function parseOptions<S extends z.ZodType>(schema: S, value: unknown, what: string): z.output<S> {
  const r = schema.safeParse(value ?? {});
  if (!r.success) throw new NlaError('ERR_NLA_INVALID_ARG', `invalid ${what}:\n${z.prettifyError(r.error)}`, { cause: r.error });
  return r.data;
}
