import { z } from 'zod';

// ---- Errors (4xx/5xx bodies)

export const errorCodeSchema = z.enum([
  'bad-request',
  'unauthorized',
  'forbidden',
  'not-found',
  'stale-token',
  'conflict',
  'lease-ended',
  'payload-too-large',
  'unsupported-media-type',
  'internal',
]);
export const errorResponseSchema = z.object({
  error: errorCodeSchema,
  message: z.string(),
  /** Dotted path of the offending field for validation errors. */
  field: z.string().optional(),
});
export type ErrorResponse = z.infer<typeof errorResponseSchema>;
