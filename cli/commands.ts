import { setTimeout as sleep } from 'node:timers/promises';
import type { z } from 'zod';
import {
  apiRoutes,
  drainRequestSchema,
  undrainRequestSchema,
  groupActionRoutes,
  nodeIdSchema,
  groupNameSchema,
  type BatonEvent,
} from '../shared/api/v1.js';
import { createAdminClient, type AdminClient } from './client.js';
import { CliError, CliExit, UsageError } from './exit.js';
import { escapeForTerminal as esc, formatDuration, formatEvent, jsonForTerminal, shortDigest } from './format.js';
import { describeDrain, renderNodes, renderStatus } from './render.js';
import { commonHelp, commonOptions, parseCommandLine, parsePositiveInteger, resolveConnection } from './options.js';

/** Where a command writes; the entry point passes the process streams, tests may pass their own. */
export interface CommandIo {
  out(text: string): void;
  err(text: string): void;
  /** Fires on SIGINT/SIGTERM: `events --follow` stops and exits 0. */
  signal: AbortSignal;
}

export const operatorCommands = ['status', 'nodes', 'pause', 'resume', 'abort', 'rollback', 'retry', 'forget', 'drain', 'undrain', 'events'] as const;
export type OperatorCommand = (typeof operatorCommands)[number];

export function isOperatorCommand(name: string | undefined): name is OperatorCommand {
  return (operatorCommands as readonly string[]).includes(name ?? '');
}

const helps: Record<OperatorCommand, string> = {
  status: `usage: baton status [--json] [options]

Shows every group with its policy and rollout, every node and every lease held.`,
  nodes: `usage: baton nodes [--group GROUP] [--json] [options]

Lists the nodes the coordinator knows, with health, update step, digest and last heartbeat.`,
  pause: `usage: baton pause GROUP [--reason TEXT] [--json] [options]

Pauses GROUP: no new lease is granted; updates in flight finish. Needs the admin token.`,
  resume: `usage: baton resume GROUP [--reason TEXT] [--json] [options]

Resumes a paused GROUP: leases are granted again. Needs the admin token.`,
  abort: `usage: baton abort GROUP [--reason TEXT] [--json] [options]

Aborts GROUP's open rollout: no node starts its digest any more. Needs the admin token.`,
  rollback: `usage: baton rollback GROUP [--reason TEXT] [--json] [options]

Opens a rollout of GROUP back to the newest digest that completed before the current
rollout, one node at a time under the same leases, drain and health checks. Agents run
it while the tag still points at the digest rolled back from; a push of another digest
rolls forward again. Needs the admin token.`,
  retry: `usage: baton retry GROUP [--reason TEXT] [--json] [options]

Opens a new rollout of the digest GROUP's halted, aborted or rolled-back rollout meant
to run (after a fix elsewhere: a config, a dependency). Needs the admin token.`,
  forget: `usage: baton forget NODE [--group GROUP] [--json] [options]

Removes NODE (a host that is gone for good) from every group, or only from GROUP,
so that it no longer counts as silent and blocks leases. Needs the admin token.`,
  drain: `usage: baton drain NODE [--group GROUP] [--reason TEXT] [--json] [options]

Takes NODE out of service (before host maintenance, say): its agent answers 503 \`drained\` on
its readiness endpoint so the load balancer stops sending, runs the service's preDrain hook,
and starts no update. The drain holds one of the group's maxUnavailable slots until
\`baton undrain\`, so it is granted only when a slot is free and no other node of the group is
out of service; otherwise it is refused with the reason (exit 65) and nothing changes: run it
again later. In every group NODE belongs to, or only in GROUP. Needs the admin token.`,
  undrain: `usage: baton undrain NODE [--group GROUP] [--json] [options]

Puts a drained NODE back in service: its readiness answers from its live health again, its
postReady hook runs, its slot is free, and it catches up with the group's rollout.
Needs the admin token.`,
  events: `usage: baton events [--follow] [--group GROUP] [--limit N] [--interval MS] [--json] [options]

Prints the newest N events (default 20), oldest first, one line each (--json: one JSON object
per line). --follow keeps printing new events, polling every --interval ms (default 1000),
until interrupted.`,
};

const exitCodesHelp = `Exit codes: 0 ok, 64 usage, 65 unknown group or node / not applicable (404, 409),
66 unreadable token file, 69 coordinator unreachable, 70 coordinator error (500),
76 not a Baton API v1 answer, 77 missing or wrong token (401, 403).`;

export function commandHelp(command: OperatorCommand): string {
  return `${helps[command]}\n\n${commonHelp}\n\n${exitCodesHelp}`;
}

function single(positionals: string[], what: string): string {
  if (positionals.length === 0) throw new UsageError(`missing ${what}`);
  if (positionals.length > 1) throw new UsageError(`one ${what} only, got ${positionals.length}`);
  return positionals[0] as string;
}

function none(positionals: string[]): void {
  if (positionals.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(positionals[0])}`);
}

function checked<T>(schema: z.ZodType<T>, value: string, what: string): T {
  const result = schema.safeParse(value);
  if (!result.success) throw new UsageError(`${what} ${JSON.stringify(value)}: ${result.error.issues[0]?.message ?? 'invalid'}`);
  return result.data;
}

/** A request body from command-line options, checked like the coordinator checks it (the option named on error). */
function bodyOf<T>(schema: z.ZodType<T>, fields: Record<string, string>): T {
  const result = schema.safeParse(fields);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  throw new UsageError(`--${String(issue?.path[0] ?? 'option')}: ${issue?.message ?? 'invalid'}`);
}

const json = (value: unknown): string => `${jsonForTerminal(value, 2)}\n`;

/** Runs one operator command; returns its exit code. CliErrors are reported by the caller. */
export async function runOperatorCommand(
  command: OperatorCommand,
  argv: string[],
  environment: NodeJS.ProcessEnv,
  io: CommandIo,
): Promise<number> {
  const extra = {
    reason: { type: 'string' },
    group: { type: 'string' },
    follow: { type: 'boolean', short: 'f' },
    limit: { type: 'string', short: 'n' },
    interval: { type: 'string' },
  } as const;
  const allowed: Record<OperatorCommand, (keyof typeof extra)[]> = {
    status: [],
    nodes: ['group'],
    pause: ['reason'],
    resume: ['reason'],
    abort: ['reason'],
    rollback: ['reason'],
    retry: ['reason'],
    forget: ['group'],
    drain: ['group', 'reason'],
    undrain: ['group'],
    events: ['group', 'follow', 'limit', 'interval'],
  };
  const options = {
    ...commonOptions,
    ...Object.fromEntries(allowed[command].map((name) => [name, extra[name]])),
  } as typeof commonOptions & Partial<typeof extra>;
  const { values: parsedValues, positionals } = parseCommandLine(argv, options);
  const values = parsedValues as {
    [K in keyof typeof commonOptions | keyof typeof extra]?: K extends 'json' | 'help' | 'follow' ? boolean : string;
  };
  if (values.help) {
    io.out(`${commandHelp(command)}\n`);
    return CliExit.ok;
  }
  const connection = resolveConnection(values, environment);
  const group = values.group !== undefined ? checked(groupNameSchema, values.group, 'group') : undefined;
  const asJson = values.json === true;

  // Usage is checked before any request, so a bad command line never reaches the coordinator.
  let run: (client: AdminClient) => Promise<number>;
  switch (command) {
    case 'status':
      none(positionals);
      run = async (client) => {
        const status = await client.call(apiRoutes.status, {});
        io.out(asJson ? json(status) : `${renderStatus(status, client.url)}\n`);
        return CliExit.ok;
      };
      break;
    case 'nodes':
      none(positionals);
      run = async (client) => {
        const status = await client.call(apiRoutes.status, {});
        const nodes = status.groups.filter((g) => group === undefined || g.name === group).flatMap((g) => g.nodes);
        if (group !== undefined && !status.groups.some((g) => g.name === group)) {
          throw new CliError(CliExit.dataError, `unknown group ${JSON.stringify(group)}`);
        }
        io.out(asJson ? json(nodes) : `${renderNodes(nodes, status.serverTimeMs)}\n`);
        return CliExit.ok;
      };
      break;
    case 'pause':
    case 'resume':
    case 'abort':
    case 'rollback':
    case 'retry': {
      const target = checked(groupNameSchema, single(positionals, 'GROUP'), 'group');
      const body = values.reason !== undefined ? { reason: values.reason } : {};
      run = async (client) => {
        const answer = await client.call(groupActionRoutes[command], { params: { group: target }, body });
        if (asJson) io.out(json(answer));
        else {
          const verb = { pause: 'paused', resume: 'resumed', abort: 'aborted', rollback: 'rolling back', retry: 'retrying' }[command];
          const which = answer.targetDigest === null ? '' : ` (#${answer.rolloutSeq}, ${shortDigest(answer.targetDigest)})`;
          io.out(
            `${esc(answer.group)}: ${verb}; group ${answer.paused ? 'is paused' : 'is not paused'}, ` +
              `rollout ${answer.rolloutState ?? 'none'}${which}\n`,
          );
        }
        return CliExit.ok;
      };
      break;
    }
    case 'forget': {
      const nodeId = checked(nodeIdSchema, single(positionals, 'NODE'), 'node');
      run = async (client) => {
        const answer = await client.call(apiRoutes.forget, { params: { nodeId }, query: { group } });
        io.out(asJson ? json(answer) : `forgot node ${esc(answer.nodeId)} in ${esc(answer.groups.join(', '))}\n`);
        return CliExit.ok;
      };
      break;
    }
    case 'drain':
    case 'undrain': {
      const nodeId = checked(nodeIdSchema, single(positionals, 'NODE'), 'node');
      const fields = { ...(group !== undefined ? { group } : {}), ...(values.reason !== undefined ? { reason: values.reason } : {}) };
      const body = command === 'drain' ? bodyOf(drainRequestSchema, fields) : bodyOf(undrainRequestSchema, fields);
      run = async (client) => {
        const answer = await client.call(apiRoutes[command], { params: { nodeId }, body });
        io.out(asJson ? json(answer) : `${describeDrain(command, answer)}\n`);
        return CliExit.ok;
      };
      break;
    }
    case 'events': {
      none(positionals);
      const limit = parsePositiveInteger(values.limit, '--limit', 1_000) ?? 20;
      const intervalMs = parsePositiveInteger(values.interval, '--interval', 3_600_000) ?? 1_000;
      run = (client) =>
        followEvents(client, { group, limit, follow: values.follow === true, intervalMs, asJson }, io);
      break;
    }
  }

  const client = createAdminClient(connection);
  try {
    return await run(client);
  } finally {
    await client.close();
  }
}

async function followEvents(
  client: AdminClient,
  options: { group: string | undefined; limit: number; follow: boolean; intervalMs: number; asJson: boolean },
  io: CommandIo,
): Promise<number> {
  const print = (event: BatonEvent): void => io.out(`${options.asJson ? jsonForTerminal(event) : formatEvent(event)}\n`);
  const first = await client.call(apiRoutes.events, { query: { limit: options.limit, group: options.group } });
  first.events.forEach(print);
  if (!options.follow) return CliExit.ok;

  let afterSeq = first.events.reduce((max, event) => Math.max(max, event.seq), 0);
  let failing = false;
  const pageSize = 1_000;
  while (!io.signal.aborted) {
    try {
      await sleep(options.intervalMs, undefined, { signal: io.signal });
    } catch {
      break;
    }
    try {
      // Drain every page that is ready before sleeping again.
      for (;;) {
        const page = await client.call(apiRoutes.events, { query: { afterSeq, limit: pageSize, group: options.group } }, io.signal);
        for (const event of page.events) {
          if (event.seq <= afterSeq) continue;
          print(event);
          afterSeq = event.seq;
        }
        if (page.events.length < pageSize) break;
      }
      if (failing) io.err(`baton events: coordinator ${client.url} reachable again\n`);
      failing = false;
    } catch (error) {
      if (io.signal.aborted) break;
      // Like tail -F: an outage of the coordinator is waited out; a refused token or a foreign API is not.
      if (error instanceof CliError && (error.exitCode === CliExit.unavailable || error.exitCode === CliExit.software)) {
        if (!failing) io.err(`baton events: ${error.message}; retrying every ${formatDuration(options.intervalMs)}\n`);
        failing = true;
        continue;
      }
      throw error;
    }
  }
  return CliExit.ok;
}
