/**
 * Faults for the fleet tests and bench:faults (test/e2e/agent-restart.test.ts, engine-down.test.ts,
 * bench/faults/main.ts): every agent restarted or killed at once, an invalid agent config on every
 * host, and the readings that go with them (the agent metric `baton_agent_config_valid`).
 */
import { readFile, writeFile } from 'node:fs/promises';
import { request } from 'undici';
import { parse, stringify } from 'yaml';
import type { Fleet } from './fleet.js';

/**
 * Stops every agent at the same moment with `signal` (SIGTERM: a restart, as `systemctl restart`
 * does; SIGKILL: killed), then starts them all again at once. Resolves when every new process runs.
 */
export async function restartAllAgents(fleet: Fleet, signal: NodeJS.Signals): Promise<void> {
  await Promise.all(fleet.nodes.map((node) => fleet.killAgent(node.index, signal)));
  await Promise.all(fleet.nodes.map((node) => fleet.restartAgent(node.index)));
}

/**
 * A config an operator got wrong, on every host: the same file with two bad fields (a probe cache
 * out of range, a drain time that is not a number); its `stateDir` is untouched, so the agent finds
 * its last known good copy. Returns a function that puts the valid files back.
 */
export async function breakAgentConfigs(fleet: Fleet): Promise<() => Promise<void>> {
  const originals = await Promise.all(fleet.nodes.map((node) => readFile(node.config.path, 'utf8')));
  await Promise.all(
    fleet.nodes.map(async (node, i) => {
      const config = parse(originals[i] as string) as Record<string, unknown> & {
        readiness: Record<string, unknown>;
        services: Record<string, unknown>[];
      };
      config.readiness = { ...config.readiness, probeCacheMs: 999_999 };
      config.services = config.services.map((service, j) => (j === 0 ? { ...service, drainSeconds: 'ten' } : service));
      await writeFile(node.config.path, stringify(config));
    }),
  );
  return async () => {
    await Promise.all(fleet.nodes.map((node, i) => writeFile(node.config.path, originals[i] as string)));
  };
}

/** `baton_agent_config_valid` from the agent's /metrics on its readiness listener (undefined if not answered). */
export async function configValidMetric(readinessListen: string): Promise<number | undefined> {
  try {
    const answer = await request(`http://${readinessListen}/metrics`, { headersTimeout: 5_000, bodyTimeout: 5_000 });
    const text = await answer.body.text();
    const line = text.split('\n').find((l) => l.startsWith('baton_agent_config_valid'));
    return line === undefined ? undefined : Number(line.split(' ').pop());
  } catch {
    return undefined;
  }
}

/** ms, rounded, or `-` when not measured. */
export function ms(value: number | undefined): string {
  return value === undefined ? '-' : String(Math.round(value));
}
