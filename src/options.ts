/**
 * Option schemas (zod, strict: a misspelled option is an error that names it).
 *
 * The public option types are written out as plain interfaces instead of `z.input<typeof …>`, and the exported
 * schemas are typed with the small `OptionsSchema` interface: the shipped .d.ts then never mention zod. zod 4's
 * declarations need TypeScript >= 5.4 (`NoInfer`), so a consumer on an older compiler (tslab bundles 5.0)
 * either failed on them (skipLibCheck: false) or silently saw every option type as `any` (skipLibCheck: true).
 * The compile-time checks at the end of this file keep the interfaces and the schemas identical.
 */
import { z } from 'zod';
import { NlaError } from './errors';

export const DEFAULT_TEMPLATE = 'Summary of the following text: <text>{explanation}</text> <summary>';
/** Block whose output the released Gemma-4-E2B AR reads (AR_TRUNCATION = 18 blocks). */
export const DEFAULT_AR_LAYER = 17;
/** Layer of the residual stream the released NLA pair encodes. */
export const DEFAULT_ACTIVATION_LAYER = 23;

/** A validator for an options object (one of the zod schemas below, typed without zod). */
export interface OptionsSchema<Output> {
  /** Returns the options with defaults filled in; throws (a zod error) when they are invalid. */
  parse(value: unknown): Output;
  safeParse(value: unknown): { success: true; data: Output } | { success: false; error: Error };
}

/** Anything with the LinearHead shape (`apply`, `inDim`, `outDim`). */
export interface HeadLike {
  apply(h: Float32Array): Float32Array;
  inDim: number;
  outDim: number;
}

export interface LoadOptions {
  /** Base model: a llama.cpp GGUF with general.architecture = gemma4. */
  model: string;
  /** PEFT adapter folder (adapter_config.json, adapter_model.safetensors, linear_head.pt); null: base model only. */
  adapter?: string | null;
  /** Head: path to a .pt/.safetensors file or a LinearHead; default <adapter>/linear_head.pt. */
  head?: string | HeadLike;
  /** Block whose last-token output feeds the head (default 17). */
  layer?: number;
  /** AR prompt; must contain {explanation} once. Default: the adapter's nla_meta.yaml template, else DEFAULT_TEMPLATE. */
  template?: string;
  /** 'raw' passes explanations through unchanged (what the released AR's scripts do); 'extract' keeps only the
   *  text between <explanation> and </explanation> (trimmed) when those tags are present. */
  explanation?: 'raw' | 'extract';
  device?: 'auto' | 'cpu' | 'cuda';
  threads?: number;
  /** 'exact': tanh-GELU in fp32. 'llamacpp': GELU through fp16 as llama.cpp's CPU backend does (for comparisons). */
  numerics?: 'exact' | 'llamacpp';
  /** Longest prompt accepted, in tokens (default: the model's context length). */
  maxTokens?: number;
}

/** LoadOptions after validation, defaults filled in. */
export interface ResolvedLoadOptions {
  model: string;
  adapter?: string | null;
  head?: string | HeadLike;
  layer: number;
  template?: string;
  explanation: 'raw' | 'extract';
  device: 'auto' | 'cpu' | 'cuda';
  threads?: number;
  numerics: 'exact' | 'llamacpp';
  maxTokens?: number;
}

export interface CallOptions {
  signal?: AbortSignal;
}

export interface HiddenStateOptions {
  signal?: AbortSignal;
  /** Block to read (default: the AR layer). */
  layer?: number;
  /** Wrap the text in the AR template (default true). */
  template?: boolean;
  /** Apply the adapter (default true when one is loaded). */
  adapter?: boolean;
  /** 'last' (default) or 'all' token positions. */
  positions?: 'last' | 'all';
}
interface ResolvedHiddenStateOptions {
  signal?: AbortSignal;
  layer?: number;
  template: boolean;
  adapter: boolean;
  positions: 'last' | 'all';
}

export interface ActivationOptions {
  signal?: AbortSignal;
  /** Residual-stream layer (block output) of the base model; default 23, the layer the released NLA encodes. */
  layer?: number;
}
interface ResolvedActivationOptions {
  signal?: AbortSignal;
  layer: number;
}

export interface RoundTripOptions {
  signal?: AbortSignal;
  /** Predict-the-mean vector (see meanActivation) for FVE. */
  mean?: Float32Array | Float64Array | number[];
}

export interface TokenizeOptions {
  /** Prepend BOS (default true). */
  bos?: boolean;
  /** Parse special tokens such as <start_of_turn> (default true). */
  special?: boolean;
}
interface ResolvedTokenizeOptions {
  bos: boolean;
  special: boolean;
}

const headLike = z.custom<HeadLike>(
  (v) => typeof v === 'object' && v !== null && typeof (v as { apply?: unknown }).apply === 'function',
  { error: 'head must be a path or a LinearHead' },
);

const LoadOptionsZod = z.strictObject({
  model: z.string().min(1),
  adapter: z.string().min(1).nullable().optional(),
  head: z.union([z.string().min(1), headLike]).optional(),
  layer: z.int().min(0).max(4096).default(DEFAULT_AR_LAYER),
  template: z
    .string()
    .refine((t) => t.split('{explanation}').length === 2, { error: 'template must contain {explanation} exactly once' })
    .optional(),
  explanation: z.enum(['raw', 'extract']).default('raw'),
  device: z.enum(['auto', 'cpu', 'cuda']).default('auto'),
  threads: z.int().min(1).max(1024).optional(),
  numerics: z.enum(['exact', 'llamacpp']).default('exact'),
  maxTokens: z.int().min(1).optional(),
});
export const LoadOptionsSchema: OptionsSchema<ResolvedLoadOptions> = LoadOptionsZod;

const CallOptionsZod = z.strictObject({
  signal: z.instanceof(AbortSignal).optional(),
});
export const CallOptionsSchema: OptionsSchema<CallOptions> = CallOptionsZod;

const HiddenStateOptionsZod = z.strictObject({
  signal: z.instanceof(AbortSignal).optional(),
  layer: z.int().min(0).max(4096).optional(),
  template: z.boolean().default(true),
  adapter: z.boolean().default(true),
  positions: z.enum(['last', 'all']).default('last'),
});
export const HiddenStateOptionsSchema: OptionsSchema<ResolvedHiddenStateOptions> = HiddenStateOptionsZod;

const ActivationOptionsZod = z.strictObject({
  signal: z.instanceof(AbortSignal).optional(),
  layer: z.int().min(0).max(4096).default(DEFAULT_ACTIVATION_LAYER),
});
export const ActivationOptionsSchema: OptionsSchema<ResolvedActivationOptions> = ActivationOptionsZod;

const RoundTripOptionsZod = z.strictObject({
  signal: z.instanceof(AbortSignal).optional(),
  // z.custom, not z.instanceof: instanceof schemas type the arrays as Float64Array<ArrayBuffer>, which rejected
  // meanActivation()'s own result (Float64Array<ArrayBufferLike>) at compile time for TypeScript users
  mean: z
    .custom<Float32Array | Float64Array | number[]>(
      (v) => v instanceof Float32Array || v instanceof Float64Array || (Array.isArray(v) && v.every((x) => typeof x === 'number')),
      { error: 'mean must be a Float32Array, Float64Array or number[]' },
    )
    .optional(),
});
export const RoundTripOptionsSchema: OptionsSchema<RoundTripOptions> = RoundTripOptionsZod;

const TokenizeOptionsZod = z.strictObject({
  bos: z.boolean().default(true),
  special: z.boolean().default(true),
});
export const TokenizeOptionsSchema: OptionsSchema<ResolvedTokenizeOptions> = TokenizeOptionsZod;

/** Parses with a schema, turning failures into ERR_NLA_INVALID_ARG that names the offending option. */
export function parseOptions<T>(schema: OptionsSchema<T>, value: unknown, what: string): T {
  const r = schema.safeParse(value ?? {});
  if (!r.success) {
    const detail = r.error instanceof z.ZodError ? z.prettifyError(r.error) : r.error.message;
    throw new NlaError('ERR_NLA_INVALID_ARG', `invalid ${what}:\n${detail}`, { cause: r.error });
  }
  return r.data;
}

// Compile-time: each interface is exactly what its schema accepts (input) and returns (output).
type Same<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
function sameTypes<_ extends true[]>(): void {}
sameTypes<[
  Same<z.input<typeof LoadOptionsZod>, LoadOptions>,
  Same<z.output<typeof LoadOptionsZod>, ResolvedLoadOptions>,
  Same<z.input<typeof CallOptionsZod>, CallOptions>,
  Same<z.output<typeof CallOptionsZod>, CallOptions>,
  Same<z.input<typeof HiddenStateOptionsZod>, HiddenStateOptions>,
  Same<z.output<typeof HiddenStateOptionsZod>, ResolvedHiddenStateOptions>,
  Same<z.input<typeof ActivationOptionsZod>, ActivationOptions>,
  Same<z.output<typeof ActivationOptionsZod>, ResolvedActivationOptions>,
  Same<z.input<typeof RoundTripOptionsZod>, RoundTripOptions>,
  Same<z.output<typeof RoundTripOptionsZod>, RoundTripOptions>,
  Same<z.input<typeof TokenizeOptionsZod>, TokenizeOptions>,
  Same<z.output<typeof TokenizeOptionsZod>, ResolvedTokenizeOptions>,
]>();
