import type { DrainInfo } from '../../shared/api/v1.js';
import type { Logger } from '../../shared/logger.js';
import type { ServiceConfig } from '../../shared/config/agent.js';
import type { HookRunner } from '../ports.js';
import type { DrainState, DrainStateStore } from './state.js';

export interface OperatorDrainDeps {
  service: ServiceConfig;
  nodeId: string;
  store: DrainStateStore;
  hooks: HookRunner;
  /** The readiness board's operator flag: 503 `drained` while set. */
  setDrained: (drained: boolean) => void;
  logger: Logger;
  /** Called once the service is back in service after an undrain (the worker polls then). */
  onUndrained: () => void;
  /** Called when the drained state changes (the worker heartbeats at once). */
  onChange: () => void;
  /** Called when a hook exits non-zero (`exitCode`) or cannot run (`error`); the drain stands either way. */
  onHookFailed: (failure: DrainHookFailure) => void;
}

export interface DrainHookFailure {
  hook: 'preDrain' | 'postReady';
  exitCode: number | null;
  error?: unknown;
}

/**
 * One service's side of an operator drain (`baton drain`). The coordinator says whether the node
 * is drained in every heartbeat answer; this keeps the service out of the balancer while it is
 * (readiness 503 `drained`), runs the preDrain hook once per drain and the postReady hook on
 * undrain, and remembers the drain in the state directory, so a restarted agent that cannot reach
 * the coordinator still answers 503. Changes are applied one at a time, in order, off the heartbeat
 * loop (a hook may take its whole timeout).
 */
export class OperatorDrain {
  private current: DrainState | undefined;
  private queue: Promise<void> = Promise.resolve();

  constructor(private readonly deps: OperatorDrainDeps) {}

  /** Drained as far as this agent knows: no update starts. */
  get active(): boolean {
    return this.current !== undefined;
  }

  /** At start, before readiness answers: a remembered drain keeps the service out until the coordinator says otherwise. */
  async restore(): Promise<void> {
    const stored = await this.deps.store.read(this.deps.service.containerName);
    if (stored === undefined) return;
    this.current = stored;
    this.deps.setDrained(true);
    this.deps.logger.info({ reason: stored.reason, sinceMs: stored.sinceMs }, 'drained by an operator before this start: kept out of the balancer');
    if (!stored.preDrainDone) this.enqueue(() => this.runPreDrain());
  }

  /** What the coordinator's heartbeat answer says: a drain to apply, or none (null) to end one. */
  follow(drained: DrainInfo | null): void {
    this.enqueue(() => (drained === null ? this.undrain() : this.drain(drained)));
  }

  /** Resolves when every change asked for so far has been applied (tests, shutdown). */
  settled(): Promise<void> {
    return this.queue;
  }

  private enqueue(work: () => Promise<void>): void {
    this.queue = this.queue.then(work).catch((error: unknown) => {
      this.deps.logger.error({ err: error }, 'applying an operator drain failed');
    });
  }

  private async drain(info: DrainInfo): Promise<void> {
    if (this.current !== undefined && this.current.sinceMs === info.sinceMs) return;
    const state: DrainState = {
      service: this.deps.service.containerName,
      group: this.deps.service.group,
      reason: info.reason,
      sinceMs: info.sinceMs,
      preDrainDone: false,
    };
    // Out of the balancer first; remembered before the hook, so a crash during it keeps the drain.
    this.current = state;
    this.deps.setDrained(true);
    this.deps.onChange();
    this.deps.logger.info({ reason: info.reason, sinceMs: info.sinceMs }, 'drained by an operator: readiness answers 503 drained');
    await this.remember(state);
    await this.runPreDrain();
  }

  private async undrain(): Promise<void> {
    const state = this.current;
    if (state === undefined) return;
    this.current = undefined;
    this.deps.setDrained(false);
    this.deps.onChange();
    this.deps.logger.info({ reason: state.reason, sinceMs: state.sinceMs }, 'undrained by an operator: readiness answers from the live probe again');
    await this.runHook('postReady', state);
    // Forgotten only after the hook: a crash before this drains again until the coordinator says otherwise.
    try {
      await this.deps.store.clear(this.deps.service.containerName);
    } catch (error) {
      this.deps.logger.error({ err: error }, 'cannot remove the drain state: a restart without the coordinator would drain again');
    }
    this.deps.onUndrained();
  }

  private async runPreDrain(): Promise<void> {
    const state = this.current;
    if (state === undefined || state.preDrainDone) return;
    await this.runHook('preDrain', state);
    // Undrained (or drained anew) while the hook ran: that change has its own record.
    if (this.current !== state) return;
    state.preDrainDone = true;
    await this.remember(state);
  }

  private async remember(state: DrainState): Promise<void> {
    try {
      await this.deps.store.write(state);
    } catch (error) {
      this.deps.logger.error({ err: error }, 'cannot write the drain state: a restart without the coordinator would not stay drained');
    }
  }

  /** A failing hook is reported; the drain (or undrain) stands either way. */
  private async runHook(which: 'preDrain' | 'postReady', state: DrainState): Promise<void> {
    const hook = this.deps.service.hooks[which];
    if (hook === undefined) return;
    const environment = {
      BATON_HOOK: which,
      BATON_NODE_ID: this.deps.nodeId,
      BATON_SERVICE: this.deps.service.containerName,
      BATON_GROUP: this.deps.service.group,
      BATON_TARGET_DIGEST: '',
      BATON_PREVIOUS_DIGEST: '',
      BATON_OPERATOR_DRAIN: which === 'preDrain' ? 'drain' : 'undrain',
      BATON_DRAIN_REASON: state.reason ?? '',
    };
    try {
      const code = await this.deps.hooks.run(hook.command, hook.timeoutMs, environment);
      if (code !== 0) this.deps.onHookFailed({ hook: which, exitCode: code });
    } catch (error) {
      this.deps.onHookFailed({ hook: which, exitCode: null, error });
    }
  }
}
