import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import type { z } from 'zod';
import { ConfigError, type ConfigProblem } from '../errors.js';

/** How one `BATON_*` environment variable maps onto a config path; `parse` turns the text into the field's raw value. */
export interface EnvironmentOverride {
  variable: string;
  path: string[];
  parse?: (text: string) => unknown;
}

export const parseEnvList = (text: string): string[] =>
  text
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');

export const parseEnvNumber = (text: string): unknown => (text.trim() === '' ? text : Number(text));

export const parseEnvBoolean = (text: string): unknown =>
  ({ true: true, '1': true, yes: true, false: false, '0': false, no: false })[text.trim().toLowerCase()] ?? text;

/** Reads a YAML or JSON document (YAML is a superset of JSON); a missing path means an empty document. */
export function readConfigDocument(path: string | undefined): unknown {
  if (path === undefined) return {};
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new ConfigError(path, [{ path: '', message: `cannot read file: ${(error as Error).message}` }]);
  }
  return parseConfigText(text, path);
}

/** Parses a config file's text (YAML or JSON); an empty document is `{}`. `source` names it in the error. */
export function parseConfigText(text: string, source: string): unknown {
  try {
    const document: unknown = parseYaml(text, { prettyErrors: true });
    return document ?? {};
  } catch (error) {
    throw new ConfigError(source, [{ path: '', message: `not valid YAML or JSON: ${(error as Error).message}` }]);
  }
}

function setPath(target: Record<string, unknown>, path: string[], value: unknown): void {
  let node = target;
  for (const key of path.slice(0, -1)) {
    const child = node[key];
    if (typeof child !== 'object' || child === null || Array.isArray(child)) node[key] = {};
    node = node[key] as Record<string, unknown>;
  }
  node[path[path.length - 1] as string] = value;
}

export function applyEnvironmentOverrides(
  document: unknown,
  environment: NodeJS.ProcessEnv,
  overrides: EnvironmentOverride[],
): unknown {
  const base =
    typeof document === 'object' && document !== null && !Array.isArray(document)
      ? structuredClone(document as Record<string, unknown>)
      : {};
  for (const override of overrides) {
    const text = environment[override.variable];
    if (text === undefined) continue;
    setPath(base, override.path, override.parse ? override.parse(text) : text);
  }
  return base;
}

export function problemsOf(error: z.ZodError): ConfigProblem[] {
  return error.issues.map((issue) => ({
    path: issue.path.map(String).join('.'),
    message: issue.message,
  }));
}

/** Validates a raw document against a schema, reporting every problem at once with its field path. */
export function validateConfig<S extends z.ZodType>(schema: S, raw: unknown, source: string): z.output<S> {
  const result = schema.safeParse(raw);
  if (!result.success) throw new ConfigError(source, problemsOf(result.error));
  return result.data;
}

/** File, then environment overrides, then validation: the one way every Baton process reads its config. */
export function loadConfig<S extends z.ZodType>(
  schema: S,
  options: { path?: string; environment: NodeJS.ProcessEnv; overrides: EnvironmentOverride[] },
): z.output<S> {
  const document = readConfigDocument(options.path);
  const merged = applyEnvironmentOverrides(document, options.environment, options.overrides);
  const source = options.path ?? 'environment';
  return validateConfig(schema, merged, source);
}
