import {
  heartbeatResponseSchema,
  leaseDecisionSchema,
  releaseResponseSchema,
  type LeaseGrant,
  type NodeHealth,
  type UpdateStep,
} from '../../shared/api/v1.js';
import { call } from './http.js';

/**
 * A scripted agent that speaks the coordinator's API over real HTTP, without Docker: it
 * says what a real agent would say at each step of an update (heartbeats, lease, release).
 */
export class SimAgent {
  digest: string;
  health: NodeHealth = 'healthy';
  step: UpdateStep = 'idle';

  constructor(
    readonly url: string,
    readonly nodeId: string,
    readonly options: { group: string; image: string; digest: string; token?: string; host?: string },
  ) {
    this.digest = options.digest;
  }

  private auth(): { token?: string } {
    return this.options.token === undefined ? {} : { token: this.options.token };
  }

  async heartbeat(): Promise<void> {
    const answer = await call(this.url, 'POST', `/v1/nodes/${encodeURIComponent(this.nodeId)}/heartbeat`, {
      ...this.auth(),
      json: {
        group: this.options.group,
        host: this.options.host ?? `${this.nodeId}.example`,
        image: this.options.image,
        currentDigest: this.digest,
        health: this.health,
        step: this.step,
        agentVersion: '0.1.0-sim',
      },
    });
    if (answer.status !== 200) throw new Error(`heartbeat of ${this.nodeId}: ${answer.status} ${JSON.stringify(answer.body)}`);
    heartbeatResponseSchema.parse(answer.body);
  }

  /** Moves to a step (and health) and tells the coordinator, as the agent's state machine does. */
  async enter(step: UpdateStep, health: NodeHealth = this.health): Promise<void> {
    this.step = step;
    this.health = health;
    await this.heartbeat();
  }

  async acquire(targetDigest: string, image?: string): Promise<LeaseGrant | { granted: false; reason: string }> {
    const answer = await call(this.url, 'POST', '/v1/leases', {
      ...this.auth(),
      json: { nodeId: this.nodeId, group: this.options.group, targetDigest, ...(image ? { image } : {}) },
    });
    if (answer.status !== 200 && answer.status !== 409) {
      throw new Error(`lease of ${this.nodeId}: ${answer.status} ${JSON.stringify(answer.body)}`);
    }
    return leaseDecisionSchema.parse(answer.body);
  }

  async mustAcquire(targetDigest: string, image?: string): Promise<LeaseGrant> {
    const decision = await this.acquire(targetDigest, image);
    if (!decision.granted) throw new Error(`${this.nodeId} was refused a lease: ${decision.reason}`);
    return decision;
  }

  async release(grant: LeaseGrant, outcome: 'updated' | 'failed' | 'abandoned', message?: string): Promise<string> {
    const answer = await call(this.url, 'POST', `/v1/leases/${encodeURIComponent(grant.leaseId)}/release`, {
      ...this.auth(),
      json: { fencingToken: grant.fencingToken, outcome, ...(message !== undefined ? { message } : {}) },
    });
    if (answer.status !== 200) throw new Error(`release of ${this.nodeId}: ${answer.status} ${JSON.stringify(answer.body)}`);
    if (outcome === 'updated') this.digest = grant.targetDigest;
    this.step = 'idle';
    this.health = 'healthy';
    return releaseResponseSchema.parse(answer.body).rolloutState;
  }

  /** A whole successful update: lease, drain, stop, start, health, release "updated". */
  async update(targetDigest: string, image?: string, pauseMs = 0): Promise<void> {
    const grant = await this.mustAcquire(targetDigest, image);
    for (const step of ['drain', 'stop', 'start', 'health', 'success'] as const) {
      await this.enter(step, step === 'drain' ? 'draining' : step === 'health' || step === 'start' ? 'starting' : this.health);
      if (pauseMs > 0) await new Promise((resolve) => setTimeout(resolve, pauseMs));
    }
    await this.release(grant, 'updated');
    await this.heartbeat();
  }

  /** A failed update: the new image never becomes healthy; the node rolls back and reports it. */
  async fail(targetDigest: string, image: string | undefined, message: string): Promise<void> {
    const grant = await this.mustAcquire(targetDigest, image);
    await this.enter('drain', 'draining');
    await this.enter('health', 'starting');
    await this.enter('rollback', 'starting');
    await this.release(grant, 'failed', message);
    await this.heartbeat();
  }
}

export function simFleet(
  url: string,
  nodeIds: string[],
  options: { group: string; image: string; digest: string; token?: string },
): SimAgent[] {
  return nodeIds.map((nodeId) => new SimAgent(url, nodeId, options));
}
