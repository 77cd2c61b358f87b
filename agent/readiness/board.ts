import type { Clock } from '../../shared/clock.js';
import { BatonError } from '../../shared/errors.js';
import type { Logger } from '../../shared/logger.js';
import type { Readiness } from '../ports.js';
import type { ProbeResult } from './probe.js';
import { decideAnswer, type FlowFlags, type ReadinessAnswer } from './truth.js';

/**
 * Each service's readiness: the update flow's flags (the Readiness port: setDraining, setHealthy)
 * and its live probe, whose result answers for `cacheMs` after the probe started. Concurrent asks
 * share the probe in flight (single flight), so a burst of balancer checks costs one inspect and one
 * HTTP check. The readiness endpoint and the heartbeat both ask here, so they tell the same thing.
 */

export interface ReadinessBoardOptions {
  services: string[];
  /** The live probe of one service (probe.ts); should not reject (a rejection counts as `check-failed`). */
  probe: (service: string) => Promise<ProbeResult>;
  clock: Clock;
  /** How long a probe's result answers, counted from the probe's start. */
  cacheMs: number;
  logger: Logger;
}

export interface ReadinessBoard extends Readiness {
  has(service: string): boolean;
  /** A probe result at most `cacheMs` old: the cached one, the one in flight, or a new one. */
  probe(service: string): Promise<ProbeResult>;
  /** What `/ready/<service>` answers now: the flags, and (unless draining) a probe at most `cacheMs` old. */
  check(service: string): Promise<ReadinessAnswer>;
  /** The answer from the flags and the last probe result, however old, without probing (logs, tests). */
  status(service: string): ReadinessAnswer | undefined;
  /** An operator's drain (`baton drain`): 503 `drained` until undrained, whatever the update flow and the probe say. */
  setDrained(service: string, drained: boolean): void;
}

interface ServiceState extends FlowFlags {
  last: { result: ProbeResult; startedAtMs: number } | undefined;
  inFlight: Promise<ProbeResult> | undefined;
  logged: ReadinessAnswer | undefined;
}

export function createReadinessBoard(options: ReadinessBoardOptions): ReadinessBoard {
  const { clock, cacheMs, logger } = options;
  const states = new Map<string, ServiceState>();
  for (const service of options.services) {
    // Not held at start: until the reconcile says otherwise, the live probe decides (a restarted
    // agent answers for a running container at once). The agent holds a service whose update a
    // crash left half done (Agent.prepare).
    states.set(service, { draining: false, held: false, drained: false, last: undefined, inFlight: undefined, logged: undefined });
  }

  const stateOf = (service: string): ServiceState => {
    const state = states.get(service);
    if (!state) throw new BatonError('READINESS_UNKNOWN_SERVICE', `readiness: unknown service ${JSON.stringify(service)}`);
    return state;
  };

  const answerOf = (state: ServiceState): ReadinessAnswer => decideAnswer(state, state.last?.result.verdict);

  const noteChange = (service: string, state: ServiceState): ReadinessAnswer => {
    const now = answerOf(state);
    if (state.logged?.ready !== now.ready || state.logged.reason !== now.reason) {
      // The first answer is logged too, at debug: it is not a change.
      const level = state.logged === undefined ? 'debug' : 'info';
      logger[level]({ service, ready: now.ready, reason: now.reason ?? null }, 'readiness changed');
      state.logged = now;
    }
    return now;
  };

  const probe = (service: string): Promise<ProbeResult> => {
    const state = stateOf(service);
    const nowMs = clock.nowMs();
    if (state.last !== undefined && nowMs - state.last.startedAtMs <= cacheMs) return Promise.resolve(state.last.result);
    if (state.inFlight !== undefined) return state.inFlight;
    const flight = Promise.resolve()
      .then(() => options.probe(service))
      .catch((err: unknown): ProbeResult => {
        logger.warn({ err, service }, 'readiness probe failed');
        return { verdict: { pass: false, reason: 'check-failed' }, container: undefined };
      })
      .then((result) => {
        state.last = { result, startedAtMs: nowMs };
        state.inFlight = undefined;
        noteChange(service, state);
        return result;
      });
    state.inFlight = flight;
    return flight;
  };

  const setFlags = (service: string, change: Partial<FlowFlags>): void => {
    const state = stateOf(service);
    Object.assign(state, change);
    noteChange(service, state);
  };

  return {
    has: (service) => states.has(service),
    probe,
    async check(service) {
      const state = stateOf(service);
      // Draining or drained: no probe can change the answer.
      if (!state.draining && !state.drained) await probe(service);
      // The flags as they are now, not as they were when the probe started.
      return noteChange(service, state);
    },
    status(service) {
      const state = states.get(service);
      return state === undefined ? undefined : answerOf(state);
    },
    setDraining(service, draining) {
      setFlags(service, { draining });
    },
    setHealthy(service, healthy) {
      setFlags(service, { held: !healthy });
    },
    setDrained(service, drained) {
      setFlags(service, { drained });
    },
  };
}
