/**
 * Fault benchmark: one fleet, the same faults seen by two load balancers side by side, in one run.
 *
 *   Baton's HAProxy     checks each agent's readiness endpoint (`/ready/app`: a live probe, an
 *                       inspect through the engine plus the app's own check, cached 250 ms); the
 *                       agents run under systemd-socket-activate as with baton-agent.socket, and its
 *                       check timeout is 5 s (the README's);
 *   app-check HAProxy   checks the app itself (`/cgi-bin/health`), as a balancer without Baton would,
 *                       check timeout 1 s.
 *
 * Both have the same strict settings otherwise (retries 0, no redispatch, inter 250 ms, fall 2,
 * rise 2) in front of the same three app containers, and each gets the same steady load (40
 * requests/s by default, 10 % of them 1 s long), one balancer at a time. The faults, one after the other, each with the
 * fleet back to every server UP in both balancers first:
 *
 *   all agents restarted        SIGTERM to every agent at once, all started again;
 *   all agents killed           SIGKILL to every agent at once, all started again together;
 *   invalid config + restart    a bad field in every host's agent.yaml, every agent restarted (they run
 *                               on the last known good config); fixed and restarted afterwards, off the clock;
 *   engine killed               node-2's dockerd SIGKILLed (its containers keep running), 8 s, started again;
 *   engine stopped              node-2's dockerd SIGTERMed (`systemctl stop docker`: the containers stop
 *                               too), 8 s, started again;
 *   app paused                  `docker pause` of node-2's app for 4 s.
 *
 * Each fault is injected twice, once per balancer, with the load through that balancer only (the
 * apps' accept queues are shared: two loads at once would charge one balancer's failures to the
 * other). Per fault and balancer: failed requests (non-2xx and socket errors) of those sent, from
 * 1.5 s before the fault to 2 s after both balancers have every server UP again; the time from the fault
 * to the first server leaving the balancer (HAProxy's own state, sampled from its stats socket every
 * 25 ms); the most servers out at once; and the sum of the servers' time out.
 *
 * Usage: npm run build && npm run bench:faults [-- --rate 40 --json out.json]
 * Needs root (dockerd), docker-registry, busybox-static, haproxy and systemd-socket-activate, as the
 * e2e tests do.
 */
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { breakAgentConfigs, restartAllAgents } from '../../tools/fleet/faults.js';
import { startFleet, type Fleet } from '../../tools/fleet/fleet.js';
import { startAppCheckHaproxy } from '../../tools/fleet/fleet-hosts.js';
import { FLEET_SERVICE } from '../../tools/fleet/fleet-names.js';
import type { RunningHaproxy } from '../../tools/fleet/haproxy.js';
import { sampleServers } from '../../tools/fleet/haproxy-stats.js';
import { startLoad } from '../../tools/fleet/load.js';
import { sleep } from '../../tools/fleet/wait.js';

const { values } = parseArgs({
  args: process.argv.slice(2).filter((arg) => arg !== '--'),
  options: {
    rate: { type: 'string', default: '40' },
    json: { type: 'string' },
  },
});
const rate = Number(values.rate);

interface Row {
  fault: string;
  balancer: string;
  failed: number;
  sent: number;
  /** Fault to the first server out; undefined: none left. */
  outAfterMs: number | undefined;
  maxOut: number;
  outSumMs: number;
}

/**
 * One fault seen through each balancer in turn: the fault is injected once per balancer, with the
 * load going through that balancer only (the apps' accept queues are shared, so two loads at once
 * would charge one balancer's failures to the other).
 */
async function measure(
  balancers: Array<{ name: string; haproxy: RunningHaproxy }>,
  fault: string,
  inject: () => Promise<void>,
  after?: () => Promise<void>,
): Promise<Row[]> {
  const rows: Row[] = [];
  for (const balancer of balancers) {
    await Promise.all(balancers.map((b) => b.haproxy.waitAllUp(90_000)));
    await sleep(1_000);
    const sampler = sampleServers(balancer.haproxy);
    const load = startLoad({ url: balancer.haproxy.url, ratePerSecond: rate, durationMs: 180_000 });
    await sleep(1_500);
    const faultAtMs = Date.now();
    await inject();
    await Promise.all(balancers.map((b) => b.haproxy.waitAllUp(120_000)));
    await sleep(2_000);
    const result = await load.stop();
    await sampler.stop();
    await after?.();
    const intervals = sampler.outIntervals().filter((i) => i.toMs >= faultAtMs);
    const first = intervals.filter((i) => i.fromMs >= faultAtMs).map((i) => i.fromMs).sort((a, b) => a - b)[0];
    const row: Row = {
      fault,
      balancer: balancer.name,
      failed: result.failed,
      sent: result.sent,
      outAfterMs: first === undefined ? undefined : first - faultAtMs,
      maxOut: sampler.maxOut({ fromMs: faultAtMs }).maxOut,
      outSumMs: intervals.reduce((sum, i) => sum + (i.toMs - Math.max(i.fromMs, faultAtMs)), 0),
    };
    rows.push(row);
    const failures = result.failures
      .slice(0, 5)
      .map((x) => `+${x.sentAtMs - faultAtMs} ms ${x.path} ${x.status ?? x.error ?? ''} after ${x.afterMs} ms`)
      .join('; ');
    process.stderr.write(`${fault} / ${balancer.name}: ${row.failed} failed${failures ? ` (${failures})` : ''}, out after ${row.outAfterMs ?? 'never'}\n`);
  }
  return rows;
}

async function main(): Promise<void> {
  process.setMaxListeners(50); // every agent, engine and balancer guards the process's exit
  const fleet = await startFleet({ nodes: 3, maxUnavailable: 1, variants: [], socketActivation: true });
  let appCheck: RunningHaproxy | undefined;
  const rows: Row[] = [];
  try {
    process.stderr.write(`fleet of 3 up in ${JSON.stringify(fleet.timings)}\n`);
    appCheck = await startAppCheckHaproxy(fleet.nodes);
    const balancers = [
      { name: 'Baton readiness', haproxy: fleet.haproxy },
      { name: 'app check', haproxy: appCheck },
    ];
    const running = async (): Promise<void> => {
      await Promise.all(fleet.nodes.map((n) => n.agent.waitForLine((l) => l.msg === 'agent running', 30_000)));
    };
    const victim = fleet.nodes[1] as Fleet['nodes'][number];

    rows.push(
      ...(await measure(balancers, 'all agents restarted (SIGTERM)', async () => {
        await restartAllAgents(fleet, 'SIGTERM');
        await running();
      })),
    );
    rows.push(
      ...(await measure(balancers, 'all agents killed (SIGKILL)', async () => {
        await restartAllAgents(fleet, 'SIGKILL');
        await running();
      })),
    );
    let restore: (() => Promise<void>) | undefined;
    rows.push(
      ...(await measure(
        balancers,
        'invalid config + all agents restarted',
        async () => {
          restore = await breakAgentConfigs(fleet);
          await restartAllAgents(fleet, 'SIGTERM');
          await running();
          await sleep(3_000);
        },
        async () => {
          // Fixed and restarted, off the clock.
          await restore?.();
          await restartAllAgents(fleet, 'SIGTERM');
          await running();
        },
      )),
    );
    rows.push(
      ...(await measure(balancers, 'engine killed (dockerd SIGKILL, containers run on), 8 s', async () => {
        await fleet.stopEngine(victim.index, 'SIGKILL');
        await sleep(8_000);
        await fleet.startEngine(victim.index);
      })),
    );
    rows.push(
      ...(await measure(balancers, 'engine stopped (dockerd SIGTERM, containers stop), 8 s', async () => {
        await fleet.stopEngine(victim.index, 'SIGTERM');
        await sleep(8_000);
        await fleet.startEngine(victim.index);
      })),
    );
    rows.push(
      ...(await measure(balancers, 'app paused (docker pause), 4 s', async () => {
        await victim.docker.getContainer(FLEET_SERVICE).pause();
        await sleep(4_000);
        await victim.docker.getContainer(FLEET_SERVICE).unpause();
      })),
    );
  } finally {
    await appCheck?.stop();
    await fleet.stop();
  }

  const lines = [
    '| fault | balancer checks | failed requests (of sent) | fault → first server out (ms) | most servers out at once | servers × time out (s) |',
    '|---|---|---:|---:|---:|---:|',
    ...rows.map(
      (r) =>
        `| ${r.fault} | ${r.balancer} | ${r.failed} (${r.sent}) | ${r.outAfterMs === undefined ? 'never' : r.outAfterMs} | ${r.maxOut} | ${(r.outSumMs / 1_000).toFixed(1)} |`,
    ),
  ];
  process.stdout.write(
    `\nFaults on a fleet of 3 under ${rate} requests/s through one balancer at a time (10% of them 1 s long); HAProxy retries 0, inter 250 ms, fall 2, rise 2. ` +
      `Baton readiness: the agents' /ready (live probe, 250 ms cache; socket activation, check timeout 5 s); app check: /cgi-bin/health (check timeout 1 s).\n\n${lines.join('\n')}\n`,
  );
  if (values.json) writeFileSync(values.json, `${JSON.stringify(rows, null, 2)}\n`);
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(`bench:faults failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exit(1);
  },
);
