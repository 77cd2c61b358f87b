import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { configProblemMaxLength, toPrintableLine } from '../../shared/api/v1.js';
import { defaultAgentStateDir, type AgentConfig } from '../../shared/config/agent.js';
import { parseConfigText } from '../../shared/config/load.js';
import { ConfigError } from '../../shared/errors.js';
import { agentConfigFromDocument } from './load.js';
import { fileLastKnownGoodStore, lastKnownGoodPath, sha256Hex, type LastKnownGood, type LastKnownGoodStore } from './last-known-good.js';

/**
 * Which config the agent starts on. A valid config file is used, and its text becomes the new last
 * known good copy. A config file that is read but invalid (not YAML, or schema problems) makes the
 * agent start on the last known good copy when there is a usable one, and report the problem; with
 * none, the agent exits 78 as before. A file that cannot be read at all is not a fallback case.
 *
 * Where the copy is looked for, when the file is invalid: in `BATON_STATE_DIR` when set; else in the
 * invalid file's own `stateDir` when the file is YAML and that field is a non-empty string; else in
 * the default `/var/lib/baton`. Only a copy taken from the same config file path is used.
 */

export interface StartupFiles {
  /** The config file's text; rejects with a ConfigError when it cannot be read. */
  readConfigText(path: string): Promise<string>;
  lastKnownGood: Pick<LastKnownGoodStore, 'read'>;
}

export interface StartupInput {
  /** `--config`, as given; undefined when the config comes from `BATON_*` variables alone. */
  configPath: string | undefined;
  environment: NodeJS.ProcessEnv;
  files: StartupFiles;
  nowMs: number;
  batonVersion: string;
}

export type StartupConfig =
  /** Start on `config`; `copy` is what to store as the last known good config (none without a file). */
  | { kind: 'valid'; config: AgentConfig; copy: LastKnownGood | undefined }
  /** Start on the last known good `copy` (`config` is it, validated); `error` is what is wrong with the file. */
  | { kind: 'fallback'; config: AgentConfig; error: ConfigError; copy: LastKnownGood; copyPath: string; problem: string }
  /** Exit 78: `error` as today, and `notes` say why no last known good copy was used. */
  | { kind: 'invalid'; error: ConfigError; notes: string[] };

export const fileStartupFiles: StartupFiles = {
  async readConfigText(path) {
    try {
      return await readFile(path, 'utf8');
    } catch (error) {
      throw new ConfigError(path, [{ path: '', message: `cannot read file: ${(error as Error).message}` }]);
    }
  },
  lastKnownGood: fileLastKnownGoodStore,
};

export async function decideStartupConfig(input: StartupInput): Promise<StartupConfig> {
  const { configPath, environment } = input;
  if (configPath === undefined) {
    try {
      return { kind: 'valid', config: agentConfigFromDocument({}, 'environment', environment), copy: undefined };
    } catch (error) {
      return { kind: 'invalid', error: asConfigError(error), notes: [] };
    }
  }

  let text: string;
  try {
    text = await input.files.readConfigText(configPath);
  } catch (error) {
    return { kind: 'invalid', error: asConfigError(error), notes: [] };
  }
  let document: unknown;
  let problem: ConfigError;
  try {
    document = parseConfigText(text, configPath);
    const config = agentConfigFromDocument(document, configPath, environment);
    const copy: LastKnownGood = {
      format: 'baton-agent-last-known-good/1',
      sourcePath: resolve(configPath),
      sha256: sha256Hex(text),
      savedAt: new Date(input.nowMs).toISOString(),
      batonVersion: input.batonVersion,
      text,
    };
    return { kind: 'valid', config, copy };
  } catch (error) {
    problem = asConfigError(error);
  }

  const stateDir = lenientStateDir(document, environment);
  const copyPath = lastKnownGoodPath(stateDir);
  const found = await input.files.lastKnownGood.read(stateDir);
  if (found.kind === 'absent') return { kind: 'invalid', error: problem, notes: [`no last known good config at ${copyPath}`] };
  if (found.kind === 'unreadable') {
    return { kind: 'invalid', error: problem, notes: [`the last known good config at ${copyPath} cannot be used: ${found.reason}`] };
  }
  const copy = found.copy;
  if (copy.sourcePath !== resolve(configPath)) {
    return {
      kind: 'invalid',
      error: problem,
      notes: [`the last known good config at ${copyPath} is a copy of ${copy.sourcePath}, not of ${resolve(configPath)}`],
    };
  }
  try {
    const source = `the last known good copy of ${copy.sourcePath} (${copyPath})`;
    const config = agentConfigFromDocument(parseConfigText(copy.text, source), source, environment);
    return { kind: 'fallback', config, error: problem, copy, copyPath, problem: configProblemLine(problem, copy) };
  } catch (error) {
    return { kind: 'invalid', error: problem, notes: [`the last known good config is not valid either: ${asConfigError(error).message}`] };
  }
}

/**
 * The state directory named by a config that may be invalid: `BATON_STATE_DIR`, else the document's
 * `stateDir` when it is a non-empty string, else the default.
 */
export function lenientStateDir(document: unknown, environment: NodeJS.ProcessEnv): string {
  const fromEnvironment = environment.BATON_STATE_DIR;
  if (fromEnvironment !== undefined && fromEnvironment !== '') return fromEnvironment;
  if (typeof document === 'object' && document !== null && !Array.isArray(document)) {
    const stateDir = (document as Record<string, unknown>).stateDir;
    if (typeof stateDir === 'string' && stateDir !== '') return stateDir;
  }
  return defaultAgentStateDir;
}

/** One printable line for heartbeats, the status page and `baton nodes`: every bad field, then what the agent runs on. */
export function configProblemLine(error: ConfigError, copy: Pick<LastKnownGood, 'savedAt' | 'sha256'>): string {
  const fields = error.problems.map((p) => `${p.path === '' ? '(root)' : p.path}: ${p.message}`).join('; ');
  const running = ` (running on the last known good config of ${copy.savedAt}, sha256 ${copy.sha256.slice(0, 12)})`;
  return `${toPrintableLine(`invalid configuration in ${error.source}: ${fields}`, configProblemMaxLength - running.length)}${running}`;
}

function asConfigError(error: unknown): ConfigError {
  if (error instanceof ConfigError) return error;
  throw error;
}
