import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { controlCharacters, eventSchema, statusResponseSchema } from '../../shared/api/v1.js';
import { batonCli, startInProcessCoordinator, type InProcessCoordinator } from '../../tools/fleet/coordinator.js';
import { call, digestOf } from '../../tools/fleet/http.js';
import { runToExit, type ExitResult } from '../../tools/fleet/run.js';

const adminToken = 'admin-token-0123456789abcdef';
const agentToken = 'agent-token-0123456789abcdef';

// What an attacker would store to rewrite the operator's screen: clear it, a C1 CSI, a bidi override.
const hostile = 'web\u001b[2J\u001b]0;owned\u0007\u009b31m\u202eevil\nforged line';
const escaped = 'web\\x1b[2J\\x1b]0;owned\\x07\\x9b31m\\u202eevil\\x0aforged line';
// baton events quotes reasons and messages as JSON strings (C0 as JSON escapes), then escapes the rest.
const escapedInQuotes = '"web\\u001b[2J\\u001b]0;owned\\u0007\\x9b31m\\u202eevil\\nforged line"';

function runCli(args: string[], url: string): Promise<ExitResult> {
  return runToExit(process.execPath, [batonCli, ...args, '--coordinator', url], {
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', BATON_TOKEN: adminToken },
  });
}

/** Every control character but the newlines the CLI itself prints between lines. */
const strayControl = new RegExp(controlCharacters.source.replace('\\u0000-\\u001f', '\\u0000-\\u0009\\u000b-\\u001f'));

describe('baton status, nodes and events escape what the coordinator stored before control characters were refused', () => {
  let dir: string;
  let coordinator: InProcessCoordinator;

  beforeAll(async () => {
    if (!existsSync(batonCli)) throw new Error(`${batonCli} is missing: run 'npm run build' first`);
    dir = mkdtempSync(join(tmpdir(), 'baton-cli-escaping-'));
    const dataFile = join(dir, 'baton.db');
    const config = { auth: { adminToken, agentTokens: [agentToken] } };
    const first = await startInProcessCoordinator({ config, dataFile });
    const heartbeat = { group: 'web', host: 'web-1.local', image: '127.0.0.1:5000/app:latest', currentDigest: digestOf('v1'), health: 'healthy', agentVersion: '0.1.0' };
    expect((await call(first.url, 'POST', '/v1/nodes/web-1/heartbeat', { json: heartbeat, token: agentToken })).status).toBe(200);
    expect((await call(first.url, 'POST', '/v1/nodes/web-1/drain', { json: { reason: 'kernel' }, token: adminToken })).status).toBe(200);
    await first.stop();

    // As an older coordinator would have stored them.
    const db = new Database(dataFile);
    db.prepare('UPDATE nodes SET host = ?, agent_version = ?').run(hostile, hostile);
    db.prepare('UPDATE drains SET reason = ?').run(hostile);
    db.prepare(`INSERT INTO events (at_ms, type, group_name, node_id, reason, message) VALUES (?, 'release', 'web', 'web-1', ?, ?)`).run(Date.now(), hostile, hostile);
    db.close();
    coordinator = await startInProcessCoordinator({ config, dataFile });
  });
  afterAll(async () => {
    await coordinator.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it.each([['status'], ['nodes'], ['events']])('baton %s prints them escaped', async (command) => {
    const { code, stdout, stderr } = await runCli([command], coordinator.url);
    expect(stderr).toBe('');
    expect(code).toBe(0);
    expect(stdout).not.toMatch(strayControl);
    expect(stdout).toContain(command === 'events' ? escapedInQuotes : escaped);
  });

  it.each([['status'], ['events']])('baton %s --json prints them as JSON escapes that read back as stored', async (command) => {
    const { code, stdout } = await runCli([command, '--json'], coordinator.url);
    expect(code).toBe(0);
    expect(stdout).not.toMatch(strayControl);
    if (command === 'status') {
      const status = statusResponseSchema.parse(JSON.parse(stdout));
      expect(status.groups[0]?.nodes[0]?.host).toBe(hostile);
    } else {
      const events = stdout.trim().split('\n').map((line) => eventSchema.parse(JSON.parse(line)));
      expect(events.at(-1)?.message).toBe(hostile);
    }
  });
});
