/**
 * Request and response bodies of the HTTP API, as zod schemas: requests are validated with them (strictly: an
 * unknown field is a 400 that names it) and /openapi.json is generated from them, so the document cannot drift
 * from what the server accepts.
 */
import { z } from 'zod';

const encoding = z
  .enum(['float', 'base64'])
  .default('float')
  .describe("Vectors in the response: JSON numbers ('float') or base64 of little-endian float32 ('base64'), as the OpenAI embeddings API's encoding_format");
const vector = z
  .union([z.array(z.number()), z.string()])
  .describe('d_model values: a JSON number array or base64 of little-endian float32 (4 bytes per value)');
const layer = z.int().min(0).max(4096).describe("Block of the base model whose output is the activation (default 23, the released pair's layer)");

export const ReconstructRequest = z.strictObject({
  explanations: z.array(z.string()).min(1).describe('Explanations (each becomes one AR prompt)'),
  encoding,
});
export const ReconstructResponse = z.object({
  reconstructions: z.array(vector),
  tokens: z.array(z.int()).describe('AR prompt length of each explanation, BOS included'),
});

export const ActivationRequest = z.strictObject({
  texts: z.array(z.string()).min(1).describe('Raw texts (no template, no adapter; BOS prepended)'),
  layer: layer.optional(),
  encoding,
});
export const ActivationResponse = z.object({
  activations: z.array(vector).describe("The base model's block-`layer` output at each text's last token"),
  layer: z.int(),
  tokens: z.array(z.int()),
});

// the Verbalizer's options (VerbalizeOptions) in the API's snake_case
const sampling = {
  max_tokens: z.int().min(1).max(4096).optional().describe('Most tokens to generate (default 120, as the released scripts); prompt + max_tokens must fit the per-item token limit'),
  temperature: z.number().min(0).max(100).optional().describe('0 = greedy (default; then seed, top_k and top_p do not matter)'),
  top_k: z.int().min(0).optional().describe('Sample from the k most likely tokens only (0 or absent: all)'),
  top_p: z.number().gt(0).max(1).optional().describe('Nucleus sampling: the smallest set of most likely tokens whose probability reaches top_p (default 1)'),
  seed: z
    .int()
    .min(0)
    .max(2 ** 32 - 1)
    .optional()
    .describe("Sampler seed (default 0): the request's i-th activation samples with seed + i, whatever it is batched with, so a seed reproduces"),
  stop: z
    .union([z.string().min(1), z.array(z.string().min(1)).min(1).max(16)])
    .optional()
    .describe("Generation also ends where the text contains one of these (finish_reason 'stop'; the text is cut before it)"),
};

export const VerbalizeRequest = z.strictObject({
  activations: z.array(vector).min(1),
  ...sampling,
});
const finishReason = z.enum(['eos', 'length', 'stop']).describe("'eos': an end-of-generation token; 'length': max_tokens; 'stop': a stop string");

export const VerbalizeResponse = z.object({
  verbalizations: z.array(
    z.object({
      text: z.string().describe('The decoded new tokens (special tokens skipped): what a round trip gives the AR'),
      explanation: z.string().describe('The text between <explanation> and </explanation> (trimmed) when present, else the text'),
      tokens: z.int().describe('Number of generated tokens'),
      token_ids: z.array(z.int()).describe('The generated token ids (the end-of-generation token excluded)'),
      finish_reason: finishReason,
    }),
  ),
});

export const RoundTripRequest = z.strictObject({
  texts: z.array(z.string()).min(1).optional().describe('Source texts: their base-model activations are the originals'),
  activations: z.array(vector).min(1).optional().describe('Originals given directly (exactly one of texts / activations)'),
  explanations: z
    .array(z.string())
    .optional()
    .describe('Explanations to reconstruct from (one per original); without them the verbalizer (AV) writes them'),
  layer: layer.optional(),
  encoding,
  ...sampling,
});
export const RoundTripResponse = z.object({
  results: z.array(
    z.object({
      explanation: z.string().describe("The explanation given, or (AV round trips) the text between the verbalizer's <explanation> tags"),
      text: z.string().optional().describe("The verbalizer's raw output, which is what the AR reconstructed from (AV round trips only)"),
      finish_reason: finishReason.optional().describe('Why the verbalizer stopped (AV round trips only)'),
      activation: vector.optional().describe('The original, when it was computed from a text'),
      reconstruction: vector,
      cosine: z.number(),
      mse: z.number().describe('Direction-MSE at scale √d = 2(1 − cos)'),
    }),
  ),
});

export const ErrorResponse = z.object({
  error: z.object({ code: z.string().describe('An NlaError or service error code (README, "Error codes" / "Serving")'), message: z.string() }),
});

export const HealthResponse = z.object({
  status: z.enum(['loading', 'ok', 'draining', 'failed']),
  ar: z.boolean(),
  av: z.boolean(),
  d_model: z.int().optional(),
  model: z.string().optional(),
});

const json = (s: z.ZodType, io: 'input' | 'output') => {
  const { $schema: _drop, ...rest } = z.toJSONSchema(s, { target: 'draft-2020-12', io, unrepresentable: 'any' }) as Record<string, unknown>;
  return rest;
};

function errorResponses(codes: number[]): Record<string, unknown> {
  const what: Record<number, string> = {
    400: 'malformed JSON, wrong types, missing or unknown fields',
    401: 'missing or wrong API key (when the server has one)',
    413: 'body, item count or an item\'s tokens over the limit',
    422: 'well-formed but unusable values (vector length, non-finite values, an all-zero activation for the AV, unknown layer)',
    429: 'queue full; see Retry-After',
    501: 'no verbalizer (AV) in this server (it was started without --av DIR)',
    503: 'loading or shutting down',
  };
  return Object.fromEntries(codes.map((c) => [String(c), { description: what[c], content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } } }]));
}

function post(summary: string, req: z.ZodType, res: z.ZodType, extra: number[] = []) {
  return {
    post: {
      summary,
      security: [{ bearer: [] }],
      requestBody: { required: true, content: { 'application/json': { schema: json(req, 'input') } } },
      responses: { '200': { description: 'ok', content: { 'application/json': { schema: json(res, 'output') } } }, ...errorResponses([400, 401, 413, 422, 429, 503, ...extra]) },
    },
  };
}

/** The OpenAPI 3.1 document of the server. */
export function openApiDocument(version: string): Record<string, unknown> {
  return {
    openapi: '3.1.0',
    info: { title: 'nla-ar', version, description: 'The Gemma-4-E2B NLA reconstructor (AR) and, when loaded, verbalizer (AV) over HTTP, with dynamic batching.' },
    components: {
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'Required on /v1 routes when the server was started with an API key' } },
      schemas: { Error: json(ErrorResponse, 'output') },
    },
    paths: {
      '/v1/reconstruct': post('Reconstruct activations from explanations (AR)', ReconstructRequest, ReconstructResponse),
      '/v1/activation': post("Base-model activations of texts (the originals the AV explains)", ActivationRequest, ActivationResponse),
      '/v1/verbalize': post('Explain activations in text (AV)', VerbalizeRequest, VerbalizeResponse, [501]),
      '/v1/round-trip': post('Round trip: original → explanation (given, or by the AV) → reconstruction, with cosine and direction-MSE', RoundTripRequest, RoundTripResponse, [501]),
      '/health': {
        get: {
          summary: '200 once the weights and adapters are loaded, 503 before (and while draining)',
          responses: { '200': { description: 'loaded', content: { 'application/json': { schema: json(HealthResponse, 'output') } } }, '503': { description: 'not loaded' } },
        },
      },
      '/ready': { get: { summary: '200 when new work is accepted (loaded, not draining, queue not full)', responses: { '200': { description: 'ready' }, '503': { description: 'not ready' } } } },
      '/metrics': { get: { summary: 'Prometheus metrics', responses: { '200': { description: 'text exposition format', content: { 'text/plain': {} } } } } },
    },
  };
}
