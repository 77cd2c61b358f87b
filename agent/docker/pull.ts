import type Docker from 'dockerode';
import { asEngineError, detailOf } from './engine-call.js';
import { ImagePullError, messageOf } from './errors.js';

/** Credentials sent with a pull (`X-Registry-Auth`), as the Docker API takes them. */
export interface DockerAuthConfig {
  username?: string;
  password?: string;
  /** base64(username:password) */
  auth?: string;
  serveraddress?: string;
  identitytoken?: string;
  registrytoken?: string;
}

export interface PullEvent {
  status?: string;
  error?: string;
  errorDetail?: { message?: string; code?: number };
}

const notFoundPattern = /manifest unknown|not found|does not exist|repository name not known|name unknown|no such/i;

/**
 * Starts the pull of `repository@digest` and reads its progress to the end; the engine's refusal
 * and a stream that breaks off become ImagePullError (an abort is left to the caller to report).
 */
export async function readPull(
  docker: Docker,
  imageByDigest: string,
  reference: { repository: string; digest: string },
  auth: DockerAuthConfig | undefined,
  abortSignal: AbortSignal,
): Promise<PullEvent[]> {
  let stream: NodeJS.ReadableStream;
  try {
    const query = { fromImage: reference.repository, tag: reference.digest, abortSignal };
    stream = auth === undefined ? await docker.createImage(query) : await docker.createImage(auth, query);
  } catch (error) {
    const engineError = asEngineError(error);
    if (engineError.statusCode !== undefined) {
      const detail = detailOf(engineError);
      throw new ImagePullError(imageByDigest, detail, engineError.statusCode === 404 || notFoundPattern.test(detail), engineError.statusCode, error);
    }
    throw error;
  }
  try {
    return await readJsonLines<PullEvent>(stream);
  } catch (error) {
    if (abortSignal.aborted) throw error;
    throw new ImagePullError(imageByDigest, `the progress stream broke off: ${messageOf(error)}`, false, undefined, error);
  }
}

/** The failure a finished pull reported in its progress stream, if any. */
export function pullFailure(imageByDigest: string, events: PullEvent[]): ImagePullError | undefined {
  const failed = events.find((event) => event.error !== undefined || event.errorDetail !== undefined);
  if (failed === undefined) return undefined;
  const detail = failed.errorDetail?.message ?? failed.error ?? 'failed';
  return new ImagePullError(imageByDigest, detail, notFoundPattern.test(detail));
}

/** Reads a JSON-lines progress stream to its end; fails if it breaks off before. */
function readJsonLines<T>(stream: NodeJS.ReadableStream): Promise<T[]> {
  return new Promise((resolve, reject) => {
    const events: T[] = [];
    let buffer = '';
    let settled = false;
    const finish = (error?: Error) => {
      if (settled) return;
      settled = true;
      if (error) reject(error);
      else resolve(events);
    };
    const take = (line: string) => {
      const trimmed = line.trim();
      if (trimmed === '') return;
      try {
        events.push(JSON.parse(trimmed) as T);
      } catch {
        // not JSON: ignore the line
      }
    };
    stream.on('data', (chunk: Buffer | string) => {
      buffer += chunk.toString();
      let newline: number;
      while ((newline = buffer.indexOf('\n')) >= 0) {
        take(buffer.slice(0, newline));
        buffer = buffer.slice(newline + 1);
      }
    });
    stream.on('end', () => {
      take(buffer);
      finish();
    });
    stream.on('error', (error: Error) => finish(error));
    stream.on('close', () => finish(new Error('the progress stream closed before its end')));
  });
}
