import { z } from 'zod';

/**
 * Socket activation, as sd_listen_fds(3) defines it: systemd (or systemd-socket-activate) passes
 * listening sockets as file descriptors 3, 4... (SD_LISTEN_FDS_START), their count in LISTEN_FDS,
 * and the PID they are meant for in LISTEN_PID. The variables are meant for this process only: a
 * LISTEN_PID naming another process (a parent that did not unset them) means none were passed here.
 */

export const sdListenFdsStart = 3;

const positiveInteger = z
  .string()
  .regex(/^[1-9][0-9]{0,9}$/)
  .transform(Number);

const listenEnvironmentSchema = z.object({
  LISTEN_PID: positiveInteger,
  LISTEN_FDS: positiveInteger,
  LISTEN_FDNAMES: z.string().optional(),
});

export interface InheritedSockets {
  /** The file descriptors passed, from 3 up. */
  fds: number[];
  /** Their names (FileDescriptorName=, LISTEN_FDNAMES), when given, in the same order. */
  names: string[];
}

/**
 * The sockets passed to process `pid`, or undefined when none were (no or malformed variables, or
 * meant for another process). Pure: the caller unsets the variables (unsetListenEnvironment), so
 * that children (hooks) do not inherit them.
 */
export function inheritedSockets(environment: NodeJS.ProcessEnv, pid: number): InheritedSockets | undefined {
  const parsed = listenEnvironmentSchema.safeParse(environment);
  if (!parsed.success || parsed.data.LISTEN_PID !== pid) return undefined;
  const count = parsed.data.LISTEN_FDS;
  const fds = Array.from({ length: count }, (_, i) => sdListenFdsStart + i);
  const names = parsed.data.LISTEN_FDNAMES === undefined ? [] : parsed.data.LISTEN_FDNAMES.split(':');
  return { fds, names };
}

/** As sd_listen_fds(1): the variables are not passed on to child processes. */
export function unsetListenEnvironment(environment: NodeJS.ProcessEnv): void {
  delete environment.LISTEN_PID;
  delete environment.LISTEN_FDS;
  delete environment.LISTEN_FDNAMES;
}
