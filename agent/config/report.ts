import type { Logger } from '../../shared/logger.js';
import { lastKnownGoodPath, type LastKnownGoodStore } from './last-known-good.js';
import type { StartupConfig } from './startup.js';

/**
 * The effects of the start-up decision once the agent has a logger: a valid config file becomes the
 * last known good copy (a failure to store it is a warning, not a reason to stop); running on the
 * copy is reported loudly, on stderr in the ConfigError format and as one error line naming every
 * bad field.
 */
export async function recordStartupConfig(
  startup: Exclude<StartupConfig, { kind: 'invalid' }>,
  options: { store: Pick<LastKnownGoodStore, 'write'>; logger: Logger; stderr: (text: string) => void },
): Promise<void> {
  const { logger } = options;
  if (startup.kind === 'valid') {
    const copy = startup.copy;
    if (copy === undefined) return;
    const path = lastKnownGoodPath(startup.config.stateDir);
    try {
      await options.store.write(startup.config.stateDir, copy);
      logger.info({ path, sha256: copy.sha256, source: copy.sourcePath }, 'config stored as the last known good config');
    } catch (error) {
      logger.warn({ err: error, path }, 'cannot store the last known good config: an invalid config file will stop the agent (exit 78)');
    }
    return;
  }
  const { error, copy, copyPath } = startup;
  options.stderr(
    `baton agent: ${error.message}\n` +
      `baton agent: running on the last known good config ${copyPath} (a copy of ${copy.sourcePath}, saved ${copy.savedAt}); fix the file and restart the agent\n`,
  );
  logger.error(
    {
      source: error.source,
      problems: error.problems.map((p) => `${p.path === '' ? '(root)' : p.path}: ${p.message}`),
      lastKnownGood: { path: copyPath, sourcePath: copy.sourcePath, sha256: copy.sha256, savedAt: copy.savedAt },
    },
    'invalid configuration: running on the last known good config; fix the file and restart the agent',
  );
}
