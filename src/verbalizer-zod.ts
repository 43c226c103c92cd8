/**
 * The zod shapes of the verbalizer's load options that the Autoencoder's schema reuses. A module of its own so
 * the public declarations (verbalizer.d.ts) never name zod's types: consumers' type checks do not depend on the
 * TypeScript version zod's declarations need.
 */
import { z } from 'zod';

const positive = z.number().positive().refine(Number.isFinite, { error: 'must be finite' });

export const verbalizerZodFields = {
  template: z.string().min(1).optional(),
  marker: z.strictObject({ token: z.int().min(0), left: z.int().min(-1), right: z.int().min(-1) }).optional(),
  injectionScale: z.union([z.literal('sqrt_d_model'), z.literal('raw'), positive]).optional(),
};
