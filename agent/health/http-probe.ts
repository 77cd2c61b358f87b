import { request, type Dispatcher } from 'undici';
import type { HealthProbe } from '../ports.js';

/** One HTTP health check: the expected status within the timeout, anything else (errors too) fails. */
export function createHttpHealthProbe(options: { dispatcher?: Dispatcher } = {}): HealthProbe {
  return {
    async check(url, expectedStatus, timeoutMs) {
      try {
        const answer = await request(url, {
          method: 'GET',
          headersTimeout: timeoutMs,
          bodyTimeout: timeoutMs,
          signal: AbortSignal.timeout(timeoutMs),
          ...(options.dispatcher ? { dispatcher: options.dispatcher } : {}),
        });
        await answer.body.dump();
        return answer.statusCode === expectedStatus;
      } catch {
        return false;
      }
    },
  };
}
