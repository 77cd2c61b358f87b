import { readFileSync } from 'node:fs';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { CliError, CliExit, UsageError } from './exit.js';

export const defaultCoordinatorUrl = 'http://127.0.0.1:7070';
export const defaultTimeoutMs = 10_000;

/** Options every operator command takes. */
export const commonOptions = {
  coordinator: { type: 'string' },
  token: { type: 'string' },
  'token-file': { type: 'string' },
  timeout: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies ParseArgsConfig['options'];

export const commonHelp = `Common options:
  --coordinator URL    coordinator base URL (default: $BATON_COORDINATOR or ${defaultCoordinatorUrl})
  --token TOKEN        bearer token (default: $BATON_TOKEN); visible to other users in ps,
                       so prefer --token-file or the environment
  --token-file FILE    read the token from FILE (default: $BATON_TOKEN_FILE)
  --timeout MS         connect, header and body timeout for each request (default: ${defaultTimeoutMs})
  --json               print JSON instead of tables
  -h, --help           show this help`;

export interface Connection {
  url: string;
  token: string | undefined;
  timeoutMs: number;
}

export function parseCommandLine<O extends NonNullable<ParseArgsConfig['options']>>(
  argv: string[],
  options: O,
): ReturnType<typeof parseArgs<{ args: string[]; options: O; allowPositionals: true; strict: true }>> {
  try {
    return parseArgs({ args: argv, options, allowPositionals: true, strict: true });
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
}

export function parsePositiveInteger(text: string | undefined, flag: string, max: number): number | undefined {
  if (text === undefined) return undefined;
  if (!/^\d+$/.test(text.trim()) || Number(text) < 1 || Number(text) > max) {
    throw new UsageError(`${flag} must be a whole number from 1 to ${max}, got ${JSON.stringify(text)}`);
  }
  return Number(text);
}

function readTokenFile(path: string): string {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new CliError(CliExit.noInput, `cannot read the token file ${path}: ${(error as Error).message}`);
  }
  const token = text.trim();
  if (token === '') throw new CliError(CliExit.noInput, `the token file ${path} is empty`);
  return token;
}

/** Where to connect and with which token: flags first, then BATON_COORDINATOR, BATON_TOKEN, BATON_TOKEN_FILE. */
export function resolveConnection(
  values: { coordinator?: string | undefined; token?: string | undefined; 'token-file'?: string | undefined; timeout?: string | undefined },
  environment: NodeJS.ProcessEnv,
): Connection {
  const url = values.coordinator ?? (environment.BATON_COORDINATOR?.trim() || undefined) ?? defaultCoordinatorUrl;
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new UsageError(`--coordinator must be a URL like ${defaultCoordinatorUrl}, got ${JSON.stringify(url)}`);
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw new UsageError(`--coordinator must be an http:// or https:// URL, got ${JSON.stringify(url)}`);
  }
  if (values.token !== undefined && values['token-file'] !== undefined) {
    throw new UsageError('give --token or --token-file, not both');
  }
  let token: string | undefined;
  if (values.token !== undefined) token = values.token.trim();
  else if (values['token-file'] !== undefined) token = readTokenFile(values['token-file']);
  else if (environment.BATON_TOKEN !== undefined && environment.BATON_TOKEN.trim() !== '') token = environment.BATON_TOKEN.trim();
  else if (environment.BATON_TOKEN_FILE !== undefined && environment.BATON_TOKEN_FILE.trim() !== '') {
    token = readTokenFile(environment.BATON_TOKEN_FILE.trim());
  }
  if (token === '') throw new UsageError('--token is empty');
  const timeoutMs = parsePositiveInteger(values.timeout, '--timeout', 600_000) ?? defaultTimeoutMs;
  return { url: `${parsed.origin}${parsed.pathname.replace(/\/+$/, '')}`, token, timeoutMs };
}
