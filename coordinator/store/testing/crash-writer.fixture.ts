/**
 * Child process of the crash test in sqlite.test.ts, run as `vite-node <this file> -- <db path>`.
 * Commits to the store in a loop and prints the seq of each event once its commit has resolved,
 * until the test kills it with SIGKILL. Resumes from the stored version when restarted.
 */
import { openSqliteStore } from '../sqlite.js';
import { appendEvent, eventRecord, groupRecord, nodeRecord, putGroup, putNode, t0 } from './store.fixtures.js';

const crashGroup = 'crash';

const path = process.argv[2];
if (path === undefined) throw new Error('usage: vite-node crash-writer.fixture.ts -- <database path>');
// A bound, so that a child the test failed to kill still ends.
const maxCommits = 20_000;
process.stdout.on('error', () => process.exit(1));

const store = openSqliteStore(path);
// Large events fill the WAL quickly, so the kill also lands around automatic checkpoints.
const padding = 'x'.repeat(2_000);
let version = (await store.loadGroup(crashGroup))?.group.version ?? 0;

for (let commits = 0; commits < maxCommits; commits += 1) {
  const next = version + 1;
  const [event] = await store.commit(crashGroup, version, [
    putGroup(groupRecord(crashGroup, next)),
    putNode(nodeRecord(crashGroup, `node-${next % 7}`, { lastHeartbeatMs: t0 + next })),
    appendEvent(eventRecord(crashGroup, { type: 'renew', fencingToken: next, message: padding })),
  ]);
  version = next;
  // Writes to a pipe are synchronous on Linux: once this returns, the parent can read the ack.
  process.stdout.write(`${event?.seq}\n`);
  if (next % 3 === 0) {
    const beat = nodeRecord(crashGroup, `node-${next % 7}`, { lastHeartbeatMs: t0 + next, health: 'starting' });
    await store.saveHeartbeats([beat]);
  }
  // Lets the event loop run: signals, and stdout errors once the test has gone.
  await new Promise((resolve) => setImmediate(resolve));
}
await store.close();
