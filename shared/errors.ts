/** Base of every error Baton raises on purpose; `code` is stable and machine-readable. */
export class BatonError extends Error {
  constructor(
    readonly code: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = new.target.name;
  }
}

export interface ConfigProblem {
  /** Dotted path of the field, e.g. `services.0.health.url`; empty for the whole document. */
  path: string;
  message: string;
}

/** A config file or environment override that cannot be used; the process exits with EX_CONFIG (78). */
export class ConfigError extends BatonError {
  constructor(
    readonly source: string,
    readonly problems: ConfigProblem[],
  ) {
    super(
      'CONFIG_INVALID',
      `invalid configuration in ${source}:\n` +
        problems.map((p) => `  - ${p.path === '' ? '(root)' : p.path}: ${p.message}`).join('\n'),
    );
  }
}

/** sysexits.h codes used by the CLI. */
export const ExitCode = {
  ok: 0,
  usage: 64,
  dataError: 65,
  unavailable: 69,
  software: 70,
  /** EX_CANTCREAT: the coordinator's database cannot be written. */
  cantCreate: 73,
  tempFail: 75,
  noPermission: 77,
  config: 78,
} as const;
