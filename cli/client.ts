import { Agent, request } from 'undici';
import type { z } from 'zod';
import { errorResponseSchema, pathOf, type ApiRoute, type RouteAnswer, type RouteRequest } from '../shared/api/v1.js';
import { CliError, CliExit } from './exit.js';
import { escapeForTerminal } from './format.js';

export interface AdminClientOptions {
  /** Base URL of the coordinator, e.g. http://127.0.0.1:7070 */
  url: string;
  token?: string | undefined;
  /** Connect, headers and body timeout, each. */
  timeoutMs: number;
}

export interface AdminClient {
  readonly url: string;
  /** Calls a route of the API table; the answer is checked with the route's response schema. */
  call<R extends ApiRoute & { response: z.ZodType }>(route: R, request: RouteRequest<R>, signal?: AbortSignal): Promise<RouteAnswer<R>>;
  close(): Promise<void>;
}

function describeNetworkError(error: unknown): string {
  const parts: string[] = [];
  let current: unknown = error;
  for (let depth = 0; current instanceof Error && depth < 4; depth += 1) {
    const code = (current as { code?: unknown }).code;
    const text = typeof code === 'string' && !current.message.includes(code) ? `${current.message} (${code})` : current.message;
    if (text !== '' && !parts.includes(text)) parts.push(text);
    current = (current as { cause?: unknown }).cause;
  }
  return parts.length > 0 ? parts.join(': ') : String(error);
}

/** The coordinator's admin and read API, with every answer checked against the API v1 schemas. */
export function createAdminClient(options: AdminClientOptions): AdminClient {
  const base = options.url.replace(/\/+$/, '');
  const dispatcher = new Agent({
    connect: { timeout: options.timeoutMs },
    headersTimeout: options.timeoutMs,
    bodyTimeout: options.timeoutMs,
    keepAliveTimeout: 4_000,
  });

  async function call<R extends ApiRoute & { response: z.ZodType }>(
    route: R,
    input: RouteRequest<R>,
    signal?: AbortSignal,
  ): Promise<RouteAnswer<R>> {
    const { method } = route;
    const path = pathOf(route, input);
    const body: unknown = input.body;
    const headers: Record<string, string> = { accept: 'application/json' };
    if (options.token !== undefined) headers.authorization = `Bearer ${options.token}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    const target = `${base}${path}`;
    let statusCode: number;
    let text: string;
    try {
      const answer = await request(target, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        dispatcher,
        signal,
      });
      statusCode = answer.statusCode;
      text = await answer.body.text();
    } catch (error) {
      if (signal?.aborted) throw error;
      throw new CliError(CliExit.unavailable, `cannot reach the coordinator at ${base}: ${describeNetworkError(error)}`, {
        cause: error,
      });
    }

    let parsed: unknown;
    try {
      parsed = text === '' ? undefined : JSON.parse(text);
    } catch {
      parsed = undefined;
    }

    if (statusCode >= 200 && statusCode < 300) {
      const result = route.response.safeParse(parsed);
      if (!result.success) {
        const issue = result.error.issues[0];
        const where = issue ? `${issue.path.join('.') || '(root)'}: ${issue.message}` : 'unexpected body';
        throw new CliError(
          CliExit.protocol,
          `${method} ${target}: the answer does not match Baton API v1 (${where}); is this a Baton coordinator of the same version?`,
        );
      }
      return result.data as RouteAnswer<R>;
    }

    const problem = errorResponseSchema.safeParse(parsed);
    const message = escapeForTerminal(problem.success ? problem.data.message : text.slice(0, 200).trim() || `HTTP ${statusCode}`);
    const code = problem.success ? problem.data.error : undefined;
    const prefix = `coordinator ${base} refused ${method} ${path}`;
    if (statusCode === 401) {
      throw new CliError(
        CliExit.noPermission,
        `${prefix}: ${message} (401). Pass a token with --token, --token-file, BATON_TOKEN or BATON_TOKEN_FILE`,
      );
    }
    if (statusCode === 403) throw new CliError(CliExit.noPermission, `${prefix}: ${message} (403)`);
    if (statusCode === 404) {
      // An unknown route is not a missing group or node: the other end does not speak API v1.
      if (!problem.success || message.startsWith('no route')) {
        throw new CliError(CliExit.protocol, `${prefix}: ${message} (404); is ${base} a Baton coordinator?`);
      }
      throw new CliError(CliExit.dataError, `${message} (404)`);
    }
    if (statusCode === 409) throw new CliError(CliExit.dataError, `${message} (409${code ? ` ${code}` : ''})`);
    if (statusCode === 400 || statusCode === 413 || statusCode === 415) {
      throw new CliError(CliExit.usage, `${prefix}: ${message} (${statusCode})`);
    }
    if (statusCode === 502 || statusCode === 503 || statusCode === 504) {
      throw new CliError(CliExit.unavailable, `${prefix}: coordinator unavailable: ${message} (${statusCode})`);
    }
    if (statusCode >= 500) throw new CliError(CliExit.software, `${prefix}: ${message} (${statusCode})`);
    throw new CliError(CliExit.protocol, `${prefix}: unexpected HTTP ${statusCode}: ${message}`);
  }

  return {
    url: base,
    call,
    close: () => dispatcher.close(),
  };
}
