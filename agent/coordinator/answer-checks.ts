import type { LeaseGrant, LeaseRequest, ReleaseResponse, RenewResponse } from '../../shared/api/v1.js';
import { CoordinatorProtocolError } from './errors.js';

/**
 * What the agent checks in a well-formed lease answer before it acts on it: the answer must be
 * about what the agent asked for. A grant for another node, group or digest, or a renew or release
 * answer about another lease, comes from a buggy or hostile coordinator (or a proxy mixing up
 * answers); the agent treats it as a protocol error and changes nothing on the node.
 *
 * Pure: each returns the error to throw, or undefined when the answer matches the request.
 * The release answer carries no fencing token, so only its lease id can be checked.
 */

/** The checks run on answers the client already accepted: a grant, a renew or a release is always a 200. */
const answeredOk = 200;

function mismatch(operation: string, field: string, expected: string | number, actual: string | number): CoordinatorProtocolError {
  return new CoordinatorProtocolError(
    operation,
    answeredOk,
    field,
    `answers for ${JSON.stringify(actual)}, but the request was for ${JSON.stringify(expected)}`,
  );
}

/** A grant must name the node, group and digest the request asked for. */
export function checkGrant(request: LeaseRequest, grant: LeaseGrant): CoordinatorProtocolError | undefined {
  if (grant.nodeId !== request.nodeId) return mismatch('acquire', 'nodeId', request.nodeId, grant.nodeId);
  if (grant.group !== request.group) return mismatch('acquire', 'group', request.group, grant.group);
  if (grant.targetDigest !== request.targetDigest) return mismatch('acquire', 'targetDigest', request.targetDigest, grant.targetDigest);
  return undefined;
}

/** A renew answer must name the lease and fencing token that were renewed. */
export function checkRenew(leaseId: string, fencingToken: number, answer: RenewResponse): CoordinatorProtocolError | undefined {
  if (answer.leaseId !== leaseId) return mismatch('renew', 'leaseId', leaseId, answer.leaseId);
  if (answer.fencingToken !== fencingToken) return mismatch('renew', 'fencingToken', fencingToken, answer.fencingToken);
  return undefined;
}

/** A release answer must name the lease that was released. */
export function checkRelease(leaseId: string, answer: ReleaseResponse): CoordinatorProtocolError | undefined {
  if (answer.leaseId !== leaseId) return mismatch('release', 'leaseId', leaseId, answer.leaseId);
  return undefined;
}
