import { z } from 'zod';
import { BatonError } from './errors.js';

/** An address to listen on or connect to; `host` is without the brackets of an IPv6 literal. */
export interface HostPort {
  host: string;
  port: number;
}

export type Reading<T> = { ok: true; value: T } | { ok: false; reason: string };

const PORT_MAX = 65_535;
/** `[v6]` (an IPv4-mapped tail such as `[::ffff:127.0.0.1]` included) or a name / IPv4 address, then `:port`. */
const hostPortPattern = /^(?:\[([0-9a-fA-F:.]+)\]|([A-Za-z0-9.-]+))(?::(\d{1,5}))?$/;

function read(text: string, example: string, portRequired: boolean): Reading<{ host: string; port: number | undefined }> {
  const match = hostPortPattern.exec(text);
  const host = match?.[1] ?? match?.[2];
  const portText = match?.[3];
  if (host === undefined || (portRequired && portText === undefined)) {
    return { ok: false, reason: `must be host:port, e.g. ${example}, got ${JSON.stringify(text)}` };
  }
  const port = portText === undefined ? undefined : Number(portText);
  if (port !== undefined && port > PORT_MAX) return { ok: false, reason: `port must be between 0 and ${PORT_MAX}, got ${portText}` };
  return { ok: true, value: { host, port } };
}

/**
 * Reads `host:port` (`[::1]:7070` for IPv6; port 0 asks the system for a free one). A failure's
 * reason reads after the field's name: `listen: must be host:port, e.g. 127.0.0.1:7070, got "x"`.
 */
export function readHostPort(text: string, example = '127.0.0.1:7070'): Reading<HostPort> {
  const reading = read(text, example, true);
  return reading.ok ? { ok: true, value: { host: reading.value.host, port: reading.value.port ?? 0 } } : reading;
}

/** `host` or `host:port`, as a registry is named in an image reference. */
export function readHostWithOptionalPort(text: string): Reading<{ host: string; port: number | undefined }> {
  return read(text, 'registry.example.com:5000', false);
}

/** Text that is not `host:port`. */
export class InvalidHostPortError extends BatonError {
  constructor(
    readonly text: string,
    readonly reason: string,
  ) {
    super('HOST_PORT_INVALID', `address ${reason}`);
  }
}

/** readHostPort for text already validated (a loaded config's): throws InvalidHostPortError. */
export function parseHostPort(text: string): HostPort {
  const reading = readHostPort(text);
  if (!reading.ok) throw new InvalidHostPortError(text, reading.reason);
  return reading.value;
}

/** The host as written in `host:port` text and URLs: IPv6 literals in brackets. */
export function formatHost(host: string): string {
  return host.includes(':') ? `[${host}]` : host;
}

/** A zod schema of `host:port` text (kept as written); `example` shows in the error. */
export function hostPortSchema(example: string): z.ZodType<string> {
  return z.string().superRefine((text, context) => {
    const reading = readHostPort(text, example);
    if (!reading.ok) context.addIssue({ code: 'custom', message: reading.reason });
  });
}
