import { readFileSync } from 'node:fs';

/** The package version, read once from package.json next to the build output or the sources. */
function readVersion(): string {
  for (const relative of ['../../package.json', '../package.json']) {
    try {
      const text = readFileSync(new URL(relative, import.meta.url), 'utf8');
      const parsed = JSON.parse(text) as { name?: unknown; version?: unknown };
      if (parsed.name === 'baton' && typeof parsed.version === 'string') return parsed.version;
    } catch {
      // Try the next location: sources and dist/ sit at different depths.
    }
  }
  return '0.0.0';
}

export const batonVersion = readVersion();
