import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { HealthProbe } from '../ports.js';

/**
 * One HTTP health check: the expected status within the timeout, anything else (errors too) fails.
 *
 * On node:http, one connection per check (`agent: false`, `connection: close`): the agent checks
 * every couple of seconds for months, and the apps it checks often close the connection anyway
 * (busybox httpd does). undici would set up a new HTTP parser (a WebAssembly instance) for every
 * new connection, which made the idle health monitor the agent's biggest CPU cost; Node's native
 * parser costs next to nothing. Redirects are not followed: a 3xx is a status like any other.
 */
export function createHttpHealthProbe(): HealthProbe {
  return {
    check(url, expectedStatus, timeoutMs) {
      return new Promise<boolean>((resolve) => {
        let settled = false;
        const finish = (ok: boolean): void => {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          resolve(ok);
        };
        let target: URL;
        try {
          target = new URL(url);
        } catch {
          resolve(false);
          return;
        }
        const send = target.protocol === 'https:' ? httpsRequest : httpRequest;
        const req = send(
          target,
          { method: 'GET', agent: false, headers: { connection: 'close', accept: '*/*', 'user-agent': 'baton-agent' } },
          (res: IncomingMessage) => {
            const ok = res.statusCode === expectedStatus;
            // Read the (small) body to its end so the socket closes cleanly; the verdict is the status.
            res.on('end', () => finish(ok));
            res.on('error', () => finish(false));
            res.on('close', () => finish(ok && res.complete));
            res.resume();
          },
        );
        const timer = setTimeout(() => {
          req.destroy(new Error(`health check timed out after ${timeoutMs} ms`));
          finish(false);
        }, timeoutMs);
        req.on('error', () => finish(false));
        req.end();
      });
    },
  };
}
