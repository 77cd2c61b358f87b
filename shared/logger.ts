import { pino, type Logger, type DestinationStream, type LevelWithSilent } from 'pino';

export type { Logger } from 'pino';

export interface LoggerOptions {
  /** Process role, e.g. `coordinator` or `agent`; appears as `name` on every line. */
  name: string;
  level?: LevelWithSilent;
  /** Defaults to stdout; tests pass a stream to read the lines back. */
  destination?: DestinationStream;
}

/** Paths that could carry a secret; pino replaces their values before a line is written. */
export const redactedPaths = [
  'token',
  '*.token',
  'authorization',
  '*.authorization',
  'headers.authorization',
  'req.headers.authorization',
  'password',
  '*.password',
  'joinToken',
  '*.joinToken',
  'adminToken',
  '*.adminToken',
  'agentTokens',
  '*.agentTokens',
];

export function createLogger(options: LoggerOptions): Logger {
  return pino(
    {
      name: options.name,
      level: options.level ?? 'info',
      base: { name: options.name },
      redact: { paths: redactedPaths, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    options.destination,
  );
}

/** A logger that writes nothing, for unit tests that do not read log lines. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
