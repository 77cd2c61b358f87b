import { ExitCode } from '../shared/errors.js';

/**
 * Exit codes of the operator commands (sysexits.h):
 *   0   done
 *   64  EX_USAGE       bad command line, or the coordinator refused the request as malformed (400)
 *   65  EX_DATAERR     the coordinator does not know the group or node (404), or the request does
 *                      not apply to its state (409, e.g. abort with no rollout to abort)
 *   66  EX_NOINPUT     --token-file (or BATON_TOKEN_FILE) cannot be read
 *   69  EX_UNAVAILABLE the coordinator cannot be reached (refused, timed out, DNS) or answered 502/503/504
 *   70  EX_SOFTWARE    the coordinator answered 500, or the CLI itself failed
 *   76  EX_PROTOCOL    the answer is not what API v1 says (schema mismatch, unknown route: not a Baton coordinator?)
 *   77  EX_NOPERM      no token, a wrong token (401), or a token without the right (403)
 */
export const CliExit = {
  ...ExitCode,
  noInput: 66,
  protocol: 76,
} as const;
export type CliExitCode = (typeof CliExit)[keyof typeof CliExit];

/** A failure the CLI reports as one line on stderr and a sysexits code. */
export class CliError extends Error {
  constructor(
    readonly exitCode: CliExitCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'CliError';
  }
}

export class UsageError extends CliError {
  constructor(message: string) {
    super(CliExit.usage, message);
    this.name = 'UsageError';
  }
}
