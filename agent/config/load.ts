import { hostname } from 'node:os';
import { agentConfigSchema, agentEnvironmentOverrides, type AgentConfig } from '../../shared/config/agent.js';
import { applyEnvironmentOverrides, problemsOf, readConfigDocument } from '../../shared/config/load.js';
import { ConfigError, type ConfigProblem } from '../../shared/errors.js';
import { cronCadence } from '../schedule/schedule.js';

/**
 * Reads the config: file, environment overrides, host-name defaults, then validation. Every problem
 * is reported at once with its field path (ConfigError, exit code 78): the schema's, and those only
 * the agent can see (a cron expression node-cron refuses).
 */
export function loadAgentConfig(path: string | undefined, environment: NodeJS.ProcessEnv): AgentConfig {
  return agentConfigFromDocument(readConfigDocument(path), path ?? 'environment', environment);
}

/** The same, from a document already parsed (the config file's, or the last known good copy's). */
export function agentConfigFromDocument(document: unknown, source: string, environment: NodeJS.ProcessEnv): AgentConfig {
  const merged = applyEnvironmentOverrides(document, environment, agentEnvironmentOverrides) as Record<string, unknown>;
  merged.nodeId ??= hostname();
  merged.host ??= hostname();
  const result = agentConfigSchema.safeParse(merged);
  const problems = result.success ? [] : problemsOf(result.error);
  for (const problem of agentOnlyProblems(merged)) {
    if (!problems.some((p) => p.path === problem.path)) problems.push(problem);
  }
  if (!result.success || problems.length > 0) throw new ConfigError(source, problems);
  return result.data;
}

function field(document: Record<string, unknown>, section: string, key: string): unknown {
  const value = document[section];
  return typeof value === 'object' && value !== null ? (value as Record<string, unknown>)[key] : undefined;
}

function agentOnlyProblems(document: Record<string, unknown>): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  const cron = field(document, 'schedule', 'cron');
  if (typeof cron === 'string' && cron.trim() !== '') {
    try {
      cronCadence(cron);
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error;
      problems.push(...error.problems);
    }
  }
  return problems;
}
