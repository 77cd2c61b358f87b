/** The agent's update flow for one service, its crash reconciliation, and the journal they share. */
export { runUpdate, type UpdateDeps, type UpdateOutcome, type UpdateResult, type UpdateTarget } from './updater.js';
export { reconcile, type ReconcileAction, type ReconcileDeps, type ReconcileResult } from './reconcile.js';
export { waitUntilHealthy, type HealthCheckConfig, type HealthDeps, type HealthResult } from './health.js';
export {
  FileUpdateJournal,
  journalEntrySchema,
  type JournalEntry,
  type UpdateJournal,
} from './state-file.js';
export { containerSpecFor, oldContainerName, restorePrevious, type RestoreReport } from './containers.js';
export { HeldLease } from './lease.js';
