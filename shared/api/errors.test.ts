import { describe, expect, it } from 'vitest';
import { ApiError, apiErrors, errorResponseSchema, toErrorResponse } from './errors.js';

const withStatusCode = (statusCode: number, message: string) => Object.assign(new Error(message), { statusCode });

describe('toErrorResponse', () => {
  it('answers an ApiError with its code, its status from the catalogue and its field', () => {
    expect(toErrorResponse(new ApiError('bad-request', 'body.group: required', 'body.group'))).toEqual({
      status: 400,
      body: { error: 'bad-request', message: 'body.group: required', field: 'body.group' },
    });
    expect(toErrorResponse(new ApiError('lease-ended'))).toEqual({
      status: 409,
      body: { error: 'lease-ended', message: apiErrors['lease-ended'].message },
    });
  });

  it('answers a framework error by its HTTP status', () => {
    expect(toErrorResponse(withStatusCode(413, 'Request body is too large'))).toEqual({
      status: 413,
      body: { error: 'payload-too-large', message: 'Request body is too large' },
    });
    expect(toErrorResponse(withStatusCode(415, 'Unsupported Media Type: text/plain'))).toEqual({
      status: 415,
      body: { error: 'unsupported-media-type', message: 'send application/json' },
    });
    expect(toErrorResponse(withStatusCode(400, 'Unexpected end of JSON input'))).toEqual({
      status: 400,
      body: { error: 'bad-request', message: 'Unexpected end of JSON input', field: 'body' },
    });
  });

  it('tells nothing of an error the catalogue does not name', () => {
    for (const error of [new Error('SQLITE_BUSY: database is locked'), withStatusCode(502, 'bad gateway'), 'thrown string']) {
      expect(toErrorResponse(error)).toEqual({ status: 500, body: { error: 'internal', message: 'internal error' } });
    }
  });

  it('gives every code a status that matches its class of error, and a body clients can read', () => {
    for (const [code, { status }] of Object.entries(apiErrors)) {
      expect(status >= 400 && status < 600, code).toBe(true);
      expect(errorResponseSchema.parse(new ApiError(code as keyof typeof apiErrors).body).error).toBe(code);
    }
  });
});
