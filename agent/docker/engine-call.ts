import { linkAbort } from '../../shared/abort.js';
import { DockerApiError, DockerRuntimeError, DockerTimeoutError, DockerUnavailableError, type DockerOperation } from './errors.js';

/** What dockerode rejects with: the engine's HTTP status and body, or a socket error's code. */
export interface EngineError {
  statusCode?: number;
  code?: string;
  message: string;
  json?: unknown;
}

export function asEngineError(error: unknown): EngineError {
  if (typeof error === 'object' && error !== null && 'message' in error) return error as EngineError;
  return { message: String(error) };
}

/** The engine's own message (`{"message": ...}`), else the client's. */
export function detailOf(error: EngineError): string {
  const json = error.json as { message?: unknown } | undefined;
  if (json !== null && typeof json === 'object' && typeof json.message === 'string') return json.message;
  return error.message;
}

const unavailableCodes = new Set(['ENOENT', 'ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'EACCES', 'ENOTSOCK', 'ECONNABORTED']);

/**
 * Runs one engine call bounded by `timeoutMs` (and the caller's signal), and turns what goes
 * wrong into named errors.
 */
export async function callEngine<T>(
  socketPath: string,
  operation: DockerOperation,
  target: string,
  run: (abortSignal: AbortSignal) => Promise<T>,
  bounds: { timeoutMs: number; signal?: AbortSignal },
): Promise<T> {
  const { timeoutMs } = bounds;
  if (bounds.signal?.aborted) throw new DockerTimeoutError(operation, target, timeoutMs, true);
  const bounded = linkAbort(bounds.signal);
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    bounded.abort();
  }, timeoutMs);
  // Not every dockerode call stops at its signal: the race ends the wait regardless.
  const aborted = new Promise<never>((_, reject) => {
    const onAbort = (): void => reject(new DockerTimeoutError(operation, target, timeoutMs, !timedOut));
    bounded.signal.addEventListener('abort', onAbort, { once: true });
  });
  aborted.catch(() => undefined);
  try {
    return await Promise.race([run(bounded.signal), aborted]);
  } catch (error) {
    if (error instanceof DockerRuntimeError) throw error;
    if (bounded.signal.aborted) throw new DockerTimeoutError(operation, target, timeoutMs, !timedOut);
    const engineError = asEngineError(error);
    if (engineError.statusCode === undefined && engineError.code !== undefined && unavailableCodes.has(engineError.code)) {
      throw new DockerUnavailableError(operation, target, socketPath, error);
    }
    throw new DockerApiError(operation, target, engineError.statusCode, detailOf(engineError), error);
  } finally {
    clearTimeout(timer);
    bounded.dispose();
  }
}
