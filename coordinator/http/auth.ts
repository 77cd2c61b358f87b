import { createHash, timingSafeEqual } from 'node:crypto';
import { ApiError } from '../../shared/api/errors.js';
import type { Access } from '../../shared/api/routes.js';

export interface AuthConfig {
  agentTokens: string[];
  joinToken?: string | undefined;
  adminToken?: string | undefined;
  publicStatus: boolean;
}

export type AuthVerdict = { allowed: true } | { allowed: false; error: 'unauthorized' | 'forbidden'; message: string };

/** Hashing first gives equal-length inputs, so the comparison's time says nothing about the token. */
function sameToken(presented: string, expected: string): boolean {
  const a = createHash('sha256').update(presented).digest();
  const b = createHash('sha256').update(expected).digest();
  return timingSafeEqual(a, b);
}

function anyMatches(presented: string, tokens: string[]): boolean {
  // Compare against every token, without stopping early, so timing does not reveal which matched.
  let matched = false;
  for (const token of tokens) matched = sameToken(presented, token) || matched;
  return matched;
}

export function authIsConfigured(config: AuthConfig): boolean {
  return config.agentTokens.length > 0 || config.joinToken !== undefined || config.adminToken !== undefined;
}

export function bearerToken(header: string | undefined): string | undefined {
  if (header === undefined) return undefined;
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
  return match?.[1];
}

/**
 * Who may do what: admin actions need the admin token; agent calls take an agent token,
 * the join token or the admin token; reads take any of them, or nothing when status is public.
 * Without any token configured every call is allowed (main refuses to listen off loopback then).
 */
export function authorize(config: AuthConfig, access: Access, presented: string | undefined): AuthVerdict {
  if (access === 'public' || !authIsConfigured(config)) return { allowed: true };
  if (access === 'read' && config.publicStatus) return { allowed: true };
  if (presented === undefined) return { allowed: false, error: 'unauthorized', message: 'a bearer token is required' };
  const isAdmin = config.adminToken !== undefined && sameToken(presented, config.adminToken);
  if (access === 'admin') {
    if (isAdmin) return { allowed: true };
    const isAgent = anyMatches(presented, agentTokensOf(config));
    return isAgent
      ? { allowed: false, error: 'forbidden', message: 'this action needs the admin token' }
      : { allowed: false, error: 'unauthorized', message: 'invalid token' };
  }
  if (isAdmin || anyMatches(presented, agentTokensOf(config))) return { allowed: true };
  return { allowed: false, error: 'unauthorized', message: 'invalid token' };
}

/** For a route's onRequest hook: throws the API's 401 or 403 when `presented` may not do `access`. */
export function requireAccess(config: AuthConfig, access: Access, presented: string | undefined): void {
  const verdict = authorize(config, access, presented);
  if (!verdict.allowed) throw new ApiError(verdict.error, verdict.message);
}

function agentTokensOf(config: AuthConfig): string[] {
  return config.joinToken === undefined ? config.agentTokens : [...config.agentTokens, config.joinToken];
}

export function isLoopbackHost(host: string): boolean {
  const bare = host.replace(/^\[|\]$/g, '');
  return bare === 'localhost' || bare === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(bare);
}
