import type { FastifyRequest } from 'fastify';
import { bearerToken } from './auth.js';

/**
 * The token a request presents. A browser signed in to the status page keeps its token in an
 * HttpOnly, SameSite=Strict cookie, which API calls take like a bearer token; state-changing
 * ones only with the `x-baton-csrf` header, which a cross-site form cannot send.
 */

export const sessionCookieName = 'baton_token';
const csrfHeader = 'x-baton-csrf';

export function cookieValue(header: string | undefined, name: string): string | undefined {
  if (header === undefined) return undefined;
  for (const part of header.split(';')) {
    const equals = part.indexOf('=');
    if (equals === -1 || part.slice(0, equals).trim() !== name) continue;
    const raw = part.slice(equals + 1).trim();
    try {
      return decodeURIComponent(raw);
    } catch {
      return undefined;
    }
  }
  return undefined;
}

/** The token a request presents: its bearer token, else the session cookie where the cookie may act. */
export function presentedToken(request: FastifyRequest): string | undefined {
  const bearer = bearerToken(request.headers.authorization);
  if (bearer !== undefined) return bearer;
  const safe = request.method === 'GET' || request.method === 'HEAD';
  if (!safe && request.headers[csrfHeader] === undefined) return undefined;
  const cookie = cookieValue(request.headers.cookie, sessionCookieName);
  return cookie === '' ? undefined : cookie;
}
