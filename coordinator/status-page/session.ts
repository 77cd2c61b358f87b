import type { FastifyRequest } from 'fastify';
import { bearerToken } from '../http/auth.js';

/**
 * How a browser proves who it is: a token given once as `/?token=...` (or through the
 * sign-in form) is kept in an HttpOnly, SameSite=Strict cookie. API calls take the cookie
 * like a bearer token; state-changing ones only with the `x-baton-csrf` header, which a
 * cross-site form cannot send.
 */

export const sessionCookieName = 'baton_token';
export const csrfHeader = 'x-baton-csrf';
const sessionMaxAgeSeconds = 7 * 24 * 3_600;

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

function isHttps(request: FastifyRequest): boolean {
  return request.protocol === 'https' || request.headers['x-forwarded-proto'] === 'https';
}

export function sessionCookie(request: FastifyRequest, token: string): string {
  const secure = isHttps(request) ? '; Secure' : '';
  return `${sessionCookieName}=${encodeURIComponent(token)}; Path=/; HttpOnly; SameSite=Strict; Max-Age=${sessionMaxAgeSeconds}${secure}`;
}

export function clearedSessionCookie(request: FastifyRequest): string {
  const secure = isHttps(request) ? '; Secure' : '';
  return `${sessionCookieName}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0${secure}`;
}
