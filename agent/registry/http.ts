import { request, type Dispatcher } from 'undici';
import { linkAbort } from '../../shared/abort.js';
import {
  RegistryConnectionError,
  RegistryError,
  RegistryProtocolError,
  RegistryRateLimitedError,
  RegistryTimeoutError,
  UnexpectedRegistryStatusError,
} from './errors.js';

export type Headers = Record<string, string | string[] | undefined>;

export interface HttpRequest {
  method: 'HEAD' | 'GET';
  url: string;
  headers: Record<string, string>;
  /** Read the body of a 2xx answer, up to this many bytes; other bodies are discarded. */
  maxBodyBytes?: number;
}

export interface HttpResponse {
  status: number;
  headers: Headers;
  /** The body of a 2xx answer when maxBodyBytes was given; empty otherwise. */
  body: Buffer;
}

export type Send = (req: HttpRequest, signal?: AbortSignal) => Promise<HttpResponse>;

const timeoutCodes = new Set(['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'UND_ERR_CONNECT_TIMEOUT']);

/** First value of a header, whichever way undici gives it. */
export function headerValue(headers: Headers, name: string): string | undefined {
  const value = headers[name.toLowerCase()];
  return Array.isArray(value) ? value[0] : value;
}

/** Every value of a header (a header sent twice arrives as an array). */
export function headerValues(headers: Headers, name: string): string[] {
  const value = headers[name.toLowerCase()];
  if (value === undefined) return [];
  return Array.isArray(value) ? value : [value];
}

/**
 * One HTTP exchange through undici with a hard deadline: `timeoutMs` covers connecting, the
 * headers and the body. Transport failures become RegistryTimeoutError or RegistryConnectionError;
 * the caller's own abort is rethrown as is.
 */
export function createSender(dispatcher: Dispatcher, timeoutMs: number): Send {
  return async (req, signal) => {
    const deadline = AbortSignal.timeout(timeoutMs);
    const combined = linkAbort(signal, deadline);
    try {
      const response = await request(req.url, {
        method: req.method,
        headers: req.headers,
        dispatcher,
        signal: combined.signal,
        headersTimeout: timeoutMs,
        bodyTimeout: timeoutMs,
      });
      const { statusCode, headers, body } = response;
      if (req.maxBodyBytes === undefined || statusCode < 200 || statusCode > 299 || req.method === 'HEAD') {
        await body.dump();
        return { status: statusCode, headers, body: Buffer.alloc(0) };
      }
      const declared = Number(headerValue(headers, 'content-length'));
      if (Number.isFinite(declared) && declared > req.maxBodyBytes) {
        body.destroy();
        throw new RegistryProtocolError(req.url, `body of ${declared} bytes exceeds the limit of ${req.maxBodyBytes}`);
      }
      const chunks: Buffer[] = [];
      let total = 0;
      for await (const chunk of body) {
        const bytes = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as Uint8Array);
        total += bytes.length;
        if (total > req.maxBodyBytes) {
          body.destroy();
          throw new RegistryProtocolError(req.url, `body exceeds the limit of ${req.maxBodyBytes} bytes`);
        }
        chunks.push(bytes);
      }
      return { status: statusCode, headers, body: Buffer.concat(chunks) };
    } catch (error) {
      if (signal?.aborted) throw signal.reason;
      if (error instanceof RegistryError) throw error;
      const code = (error as { code?: unknown }).code;
      if (deadline.aborted || (typeof code === 'string' && timeoutCodes.has(code))) {
        throw new RegistryTimeoutError(req.url, timeoutMs, { cause: error });
      }
      throw new RegistryConnectionError(req.url, { cause: error });
    } finally {
      combined.dispose();
    }
  };
}

/**
 * Milliseconds to wait from a Retry-After value: delay-seconds or an HTTP date (read against
 * `nowMs`). Undefined when absent or unreadable; capped at one hour so a silly hint cannot park
 * an agent for days.
 */
export function parseRetryAfterMs(value: string | undefined, nowMs: number): number | undefined {
  if (value === undefined) return undefined;
  const text = value.trim();
  let ms: number;
  if (/^\d+$/.test(text)) ms = Number(text) * 1000;
  else {
    const at = Date.parse(text);
    if (Number.isNaN(at)) return undefined;
    ms = at - nowMs;
  }
  return Math.min(Math.max(0, ms), 3_600_000);
}

/** The error for an answer the caller cannot use: rate limiting (429, or 503 with Retry-After) or an unexpected status. */
export function statusError(registry: string, req: HttpRequest, res: HttpResponse, nowMs: number): RegistryError {
  const retryAfter = headerValue(res.headers, 'retry-after');
  if (res.status === 429 || (res.status === 503 && retryAfter !== undefined)) {
    return new RegistryRateLimitedError(registry, res.status, parseRetryAfterMs(retryAfter, nowMs));
  }
  return new UnexpectedRegistryStatusError(req.method, req.url, res.status);
}
