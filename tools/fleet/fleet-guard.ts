/**
 * What keeps fleets from harming each other and the machine: a machine-wide lock (a folder in /tmp),
 * so one fleet runs at a time, and a detached watchdog that kills a fleet's processes when the test
 * process dies without stopping it.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { sleep } from './wait.js';

const lockDir = '/tmp/baton-e2e-fleet.lock';

/** Takes the machine-wide fleet lock (waiting up to `timeoutMs`, taking over a dead holder's); resolves with its release. */
export async function acquireFleetLock(timeoutMs: number): Promise<() => void> {
  if (process.env.BATON_E2E_NO_LOCK) return () => undefined;
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    try {
      mkdirSync(lockDir);
      writeFileSync(join(lockDir, 'pid'), String(process.pid));
      let released = false;
      const release = (): void => {
        if (released) return;
        released = true;
        process.removeListener('exit', release);
        rmSync(lockDir, { recursive: true, force: true });
      };
      process.once('exit', release);
      return release;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      // Stale: the holder is gone.
      let holder = NaN;
      try {
        holder = Number(readFileSync(join(lockDir, 'pid'), 'utf8'));
      } catch {
        // Being written or removed right now.
      }
      if (Number.isInteger(holder) && holder > 0 && !processAlive(holder)) rmSync(lockDir, { recursive: true, force: true });
      if (Number.isNaN(holder) && existsSync(lockDir)) {
        // No pid file for a while: a holder died between mkdir and write. Give it a moment first.
        await sleep(1_000);
        if (!existsSync(join(lockDir, 'pid'))) rmSync(lockDir, { recursive: true, force: true });
      }
    }
    if (performance.now() > deadline) throw new Error(`startFleet: another fleet held ${lockDir} for ${timeoutMs} ms`);
    await sleep(500);
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * A detached shell that waits for the test process to die, then SIGKILLs every pid listed in
 * `<dir>/pids` whose command line still names its marker (a path of this fleet), and every process
 * whose command line names the fleet's folder. stop() kills the watchdog itself.
 */
export interface Watchdog {
  /** Kill `pid` if its command line still names `marker`; without a pid, every process that names it. */
  add(pid: number | undefined, marker: string): void;
  /** Remove this folder (under /tmp/baton-*) too. */
  addDir(path: string): void;
  stop(): void;
}

export function startWatchdog(dir: string): Watchdog {
  const pidsFile = join(dir, 'pids');
  const dirsFile = join(dir, 'dirs');
  writeFileSync(pidsFile, '');
  writeFileSync(dirsFile, '');
  const script = String.raw`
parent="$1"; dir="$2"; pids="$3"; dirs="$4"; lock="$5"
while kill -0 "$parent" 2>/dev/null; do sleep 1; done
while read -r pid marker; do
  [ -n "$pid" ] && [ "$pid" != "-" ] && grep -qsF "$marker" "/proc/$pid/cmdline" && kill -KILL "$pid" 2>/dev/null
  if [ "$pid" = "-" ]; then
    for p in $(grep -lasF "$marker" /proc/[0-9]*/cmdline | cut -d/ -f3); do [ "$p" = "$$" ] || kill -KILL "$p" 2>/dev/null; done
  fi
done < "$pids"
for p in $(grep -lasF "$dir" /proc/[0-9]*/cmdline | cut -d/ -f3); do [ "$p" = "$$" ] || kill -KILL "$p" 2>/dev/null; done
sleep 0.5
while read -r extra; do case "$extra" in /tmp/baton-*) rm -rf "$extra" ;; esac; done < "$dirs"
[ "$(cat "$lock/pid" 2>/dev/null)" = "$parent" ] && rm -rf "$lock"
rm -rf "$dir"
`;
  const child = spawn('/bin/sh', ['-c', script, 'fleet-watchdog', String(process.pid), dir, pidsFile, dirsFile, lockDir], {
    stdio: 'ignore',
    detached: true,
  });
  child.unref();
  const append = (file: string, line: string): void => {
    try {
      writeFileSync(file, `${line}\n`, { flag: 'a' });
    } catch {
      // The fleet is being torn down.
    }
  };
  return {
    add: (pid, marker) => append(pidsFile, `${pid ?? '-'} ${marker}`),
    addDir: (path) => append(dirsFile, path),
    stop() {
      try {
        if (child.pid !== undefined) process.kill(child.pid, 'SIGKILL');
      } catch {
        // Already gone.
      }
    },
  };
}
