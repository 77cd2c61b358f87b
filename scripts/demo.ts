/**
 * The demo: a whole Baton fleet on this machine, all on loopback and all real (a registry,
 * three hosts each with its own dockerd and `baton agent`, a coordinator, HAProxy in front of
 * the apps). It prints the status page's address, pushes v2 of the demo app under a steady
 * load through HAProxy, reports how the rollout went, and keeps the fleet up until Ctrl-C.
 *
 * Run it with `sudo bash scripts/demo.sh` (which installs and builds first).
 */
import { parseArgs } from 'node:util';
import { startFleet, type Fleet } from '../tools/fleet/fleet.js';
import { startLoad, type RunningLoad } from '../tools/fleet/load.js';

const say = (line: string): void => {
  process.stdout.write(`${line}\n`);
};

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      nodes: { type: 'string', default: '3' },
      'wait-seconds': { type: 'string', default: '15' },
      'no-wait': { type: 'boolean', default: false },
    },
  });
  const nodes = Number(values.nodes);
  const waitSeconds = values['no-wait'] ? 0 : Number(values['wait-seconds']);

  say(`Starting a fleet of ${nodes} hosts (registry, ${nodes} dockerd + baton agent, coordinator, HAProxy)...`);
  // What Ctrl-C must stop, whenever it comes.
  const running: { fleet?: Fleet; load?: RunningLoad | undefined; stopping?: boolean } = {};
  const stop = async (code: number): Promise<void> => {
    if (running.stopping) return;
    running.stopping = true;
    say('\nStopping the fleet...');
    await running.load?.stop().catch(() => undefined);
    await running.fleet?.stop().catch(() => undefined);
    process.exit(code);
  };
  process.once('SIGINT', () => void stop(0));
  process.once('SIGTERM', () => void stop(0));

  const fleet = await startFleet({ nodes, variants: ['v1', 'v2'] });
  running.fleet = fleet;
  say('');
  say(`  status page   ${fleet.coordinatorUrl}/`);
  say(`  the app       ${fleet.haproxy.url}/version   (through HAProxy)`);
  say(`  CLI           node dist/cli/baton.js status --coordinator ${fleet.coordinatorUrl}`);
  say('  (from another machine: ssh -L 7070:' + new URL(fleet.coordinatorUrl).host + ' this-host, then open http://127.0.0.1:7070/)');
  say('');
  say(`All ${nodes} hosts serve v1. Open the status page; v2 is pushed in ${waitSeconds} s.`);
  await new Promise((resolve) => setTimeout(resolve, waitSeconds * 1_000));

  const load = startLoad({ url: fleet.haproxy.url, ratePerSecond: 20, durationMs: 180_000 });
  running.load = load;
  const pushedAtMs = Date.now();
  const digest = await fleet.push('v2');
  say(`Pushed v2 as testapp:latest (${digest.slice(0, 19)}). The hosts update one at a time, under load:`);
  const ticker = setInterval(() => {
    const progress = load.progress();
    say(`  ${((Date.now() - pushedAtMs) / 1000).toFixed(0).padStart(3)} s  requests ${progress.sent}, failed ${progress.failed}`);
  }, 3_000);
  try {
    await fleet.waitConverged(digest, 170_000);
  } finally {
    clearInterval(ticker);
  }
  const convergedAfterMs = Date.now() - pushedAtMs;
  const result = await load.stop();
  running.load = undefined;
  say('');
  say(`Every host runs v2, ${(convergedAfterMs / 1000).toFixed(1)} s after the push.`);
  say(`Requests through HAProxy during the rollout: ${result.sent} sent, ${result.ok} ok, ${result.failed} failed.`);
  say(`Most hosts out of service at once (from Docker's own events): ${fleet.unavailability(pushedAtMs).maxDown}.`);
  say('');
  say('The fleet stays up: try `baton pause app`, push again, or stop an agent. Ctrl-C ends the demo.');
}

main().catch(async (error: unknown) => {
  process.stderr.write(`demo failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
});
