/**
 * Builds the Baton test application images with `docker import` (no base image, no internet) and
 * pushes them to a test registry.
 *
 * The app (tools/fleet/testapp/): static busybox; `/bin/testapp` runs `busybox httpd -f -p
 * $APP_ADDR:$APP_PORT -h /www` (defaults 127.0.0.1:8080) and stops gracefully on SIGTERM.
 *   GET /version          the variant name, exactly (`v1`, `v2`, `v3`, `bad`), no newline
 *   GET /cgi-bin/health   200 `ok <variant>`; 500 in `bad`, and after /cgi-bin/break
 *   GET /health           good variants: static 200 `ok`; `bad`: 302 -> /health/ -> 500
 *   GET /cgi-bin/slow?S   sleeps S seconds (default 1, fractions allowed), then 200
 *   GET /cgi-bin/info     `<variant> <$APP_NODE> <hostname>`
 *   GET /cgi-bin/break    /cgi-bin/health (and the Docker HEALTHCHECK) fail until /cgi-bin/heal
 * Docker HEALTHCHECK (set with an import change; `docker import --change HEALTHCHECK ...` works in
 * 20.10): every 1 s, timeout 2 s, 2 retries, `/bin/testapp-healthcheck` = wget of /cgi-bin/health.
 * The bad image therefore turns `unhealthy` about 2 s after start.
 * Env: APP_ADDR, APP_PORT, APP_GRACE_SECONDS (drain on SIGTERM, default 5), APP_NODE.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { copyFile, chmod, mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Docker from 'dockerode';
import { isDigest } from '../../shared/image-ref.js';

/** `v3` is a third good variant (a fix-forward after `bad`); importTestApp builds it on demand. */
export type TestAppVariant = 'v1' | 'v2' | 'v3' | 'bad';
/** The variants buildTestImages builds and pushes. */
export const testAppVariants: readonly Exclude<TestAppVariant, 'v3'>[] = ['v1', 'v2', 'bad'];

/** Repository name of the test app in the test registry: `<registryHost>/testapp`. */
export const TESTAPP_REPOSITORY = 'testapp';

export const testAppPaths = {
  /** The health endpoint to configure: 200 in v1/v2, 500 in bad. */
  health: '/cgi-bin/health',
  staticHealth: '/health',
  version: '/version',
  slow: '/cgi-bin/slow',
  info: '/cgi-bin/info',
  break: '/cgi-bin/break',
  heal: '/cgi-bin/heal',
} as const;

/** Digests (`sha256:...`) of the pushed images, by variant. */
export interface TestImages {
  v1: string;
  v2: string;
  bad: string;
}

/** The app's scripts: next to this file in the sources; from build/ (demo, benchmarks), back in the sources. */
const appSourceDir = [new URL('./testapp/', import.meta.url), new URL('../../../tools/fleet/testapp/', import.meta.url)]
  .map((url) => fileURLToPath(url))
  .find((dir) => existsSync(join(dir, 'testapp.sh'))) as string;
const busyboxApplets = ['sh', 'httpd', 'wget', 'sleep', 'cat', 'echo', 'hostname', 'rm', 'kill', 'ls', 'ps', 'env', 'true', 'false', 'id'];

/** `<registryHost>/testapp@<digest>` (or `:<tag>` when given a tag). */
export function testAppImage(registryHost: string, digestOrTag: string): string {
  const separator = isDigest(digestOrTag) ? '@' : ':';
  return `${registryHost}/${TESTAPP_REPOSITORY}${separator}${digestOrTag}`;
}

/** The `docker import` changes of a variant: CMD, ENV, HEALTHCHECK, LABEL. */
export function testAppImportChanges(variant: TestAppVariant): string[] {
  return [
    'CMD ["/bin/testapp"]',
    'ENV APP_ADDR=127.0.0.1',
    'ENV APP_PORT=8080',
    `ENV TESTAPP_VARIANT=${variant}`,
    'HEALTHCHECK --interval=1s --timeout=2s --retries=2 CMD ["/bin/testapp-healthcheck"]',
    `LABEL org.opencontainers.image.title=baton-testapp baton.testapp.variant=${variant}`,
  ];
}

/** Writes the variant's root file system into `dir` (which must exist and be empty). */
export async function writeTestAppRootfs(variant: TestAppVariant, dir: string): Promise<void> {
  for (const sub of ['bin', 'etc/testapp', 'www/cgi-bin', 'tmp', 'proc', 'sys', 'dev', 'root']) {
    await mkdir(join(dir, sub), { recursive: true });
  }
  await chmod(join(dir, 'tmp'), 0o1777);
  await copyFile('/usr/bin/busybox', join(dir, 'bin/busybox'));
  await chmod(join(dir, 'bin/busybox'), 0o755);
  for (const applet of busyboxApplets) await symlink('busybox', join(dir, 'bin', applet));
  const script = async (source: string, target: string) => {
    await copyFile(join(appSourceDir, source), join(dir, target));
    await chmod(join(dir, target), 0o755);
  };
  await script('testapp.sh', 'bin/testapp');
  await script('healthcheck.sh', 'bin/testapp-healthcheck');
  for (const cgi of ['health', 'slow', 'info', 'break', 'heal']) await script(`cgi-bin/${cgi}.sh`, `www/cgi-bin/${cgi}`);

  await writeFile(join(dir, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n');
  await writeFile(join(dir, 'etc/group'), 'root:x:0:\nnogroup:x:65534:\n');
  await writeFile(join(dir, 'etc/testapp/variant'), `${variant}\n`);
  await writeFile(join(dir, 'etc/testapp/health'), variant === 'bad' ? '500\n' : '200\n');
  await writeFile(join(dir, 'www/version'), variant);
  if (variant === 'bad') {
    // An empty directory: httpd redirects /health to /health/ and runs /cgi-bin/index.cgi there.
    await mkdir(join(dir, 'www/health'));
    await script('cgi-bin/index-bad.sh', 'www/cgi-bin/index.cgi');
  } else {
    await writeFile(join(dir, 'www/health'), 'ok\n');
  }
}

/**
 * Builds one variant into the engine as `reference` (`repo:tag`) with `docker import`.
 * Resolves with the image id.
 */
export async function importTestApp(socketPath: string, variant: TestAppVariant, reference: string): Promise<string> {
  const docker = new Docker({ socketPath });
  const work = await mkdtemp(join(tmpdir(), 'baton-img-'));
  try {
    const rootfs = join(work, 'rootfs');
    await mkdir(rootfs);
    await writeTestAppRootfs(variant, rootfs);
    const tarPath = join(work, 'rootfs.tar');
    await run('tar', ['--sort=name', '--owner=0', '--group=0', '--numeric-owner', '--mtime=@0', '-C', rootfs, '-cf', tarPath, '.']);
    const { repository, tag } = splitReference(reference);
    const stream = await docker.importImage(tarPath, { repo: repository, tag, changes: testAppImportChanges(variant) });
    const events = await followStream(docker, stream, `import ${reference}`);
    const id = events.map((e) => e.status).find((s): s is string => typeof s === 'string' && s.startsWith('sha256:'));
    if (id === undefined) throw new Error(`import ${reference}: no image id in ${JSON.stringify(events)}`);
    return id;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/**
 * Builds v1, v2 and bad into the engine at `socketPath` and pushes them to the registry at
 * `registryHost` (`127.0.0.1:<port>`) as `<registryHost>/testapp:v1|v2|bad`. Resolves with the
 * pushed manifest digests, which differ between variants.
 */
export async function buildTestImages(socketPath: string, registryHost: string): Promise<TestImages> {
  const digests: Partial<Record<TestAppVariant, string>> = {};
  for (const variant of testAppVariants) {
    const reference = testAppImage(registryHost, variant);
    await importTestApp(socketPath, variant, reference);
    digests[variant] = await push(socketPath, reference);
  }
  return { v1: digests.v1!, v2: digests.v2!, bad: digests.bad! };
}

/**
 * Tags `source` (any reference the engine knows: `repo:tag`, `repo@digest`, image id) as `target`
 * (`repo:tag`) and pushes it. Resolves with the pushed digest (the same as the source's when the
 * source was pushed before: the manifest is identical).
 */
export async function pushAs(socketPath: string, source: string, target: string): Promise<string> {
  const docker = new Docker({ socketPath });
  const { repository, tag } = splitReference(target);
  await docker.getImage(source).tag({ repo: repository, tag });
  return push(socketPath, target);
}

/** Pushes `reference` (`repo:tag`); resolves with the manifest digest the registry stored. */
export async function push(socketPath: string, reference: string): Promise<string> {
  const docker = new Docker({ socketPath });
  const { repository, tag } = splitReference(reference);
  const stream = await docker.getImage(repository).push({ tag });
  const events = await followStream(docker, stream, `push ${reference}`);
  for (const event of events) {
    const aux = event.aux as { Digest?: unknown } | undefined;
    if (typeof aux?.Digest === 'string') return aux.Digest;
  }
  throw new Error(`push ${reference}: no digest in ${JSON.stringify(events)}`);
}

interface ProgressEvent {
  status?: string;
  error?: string;
  errorDetail?: { message?: string };
  aux?: unknown;
}

function followStream(docker: Docker, stream: NodeJS.ReadableStream, what: string): Promise<ProgressEvent[]> {
  return new Promise((resolve, reject) => {
    docker.modem.followProgress(stream, (error: Error | null, events: ProgressEvent[]) => {
      if (error) {
        reject(new Error(`${what}: ${error.message}`, { cause: error }));
        return;
      }
      const failed = events.find((e) => e.error !== undefined || e.errorDetail !== undefined);
      if (failed) reject(new Error(`${what}: ${failed.error ?? failed.errorDetail?.message ?? 'failed'}`));
      else resolve(events);
    });
  });
}

function splitReference(reference: string): { repository: string; tag: string } {
  const slash = reference.lastIndexOf('/');
  const colon = reference.lastIndexOf(':');
  if (reference.includes('@') || colon <= slash) throw new Error(`expected repo:tag, got ${reference}`);
  return { repository: reference.slice(0, colon), tag: reference.slice(colon + 1) };
}

function run(command: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk: string) => (stderr += chunk));
    child.on('error', reject);
    child.on('exit', (code) =>
      code === 0 ? resolve() : reject(new Error(`${command} ${args.join(' ')} exited ${String(code)}: ${stderr.trim()}`)),
    );
  });
}
