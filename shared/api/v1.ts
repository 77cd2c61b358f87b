/**
 * The coordinator's HTTP API v1: every message, its routes and its errors. Both sides validate with
 * these schemas: the coordinator every request, the agent and the CLI every answer.
 */
export * from './fields.js';
export * from './agent-messages.js';
export * from './operator-messages.js';
export * from './errors.js';
export * from './routes.js';
