import type { FastifyRequest } from 'fastify';
import { sessionCookieName } from '../http/credentials.js';

/**
 * How a browser signs in: a token given once as `/?token=...` (or through the sign-in form)
 * becomes the session cookie that coordinator/http/credentials.ts reads back.
 */

const sessionMaxAgeSeconds = 7 * 24 * 3_600;

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
