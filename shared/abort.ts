/** A signal aborted when any of its sources is, until `dispose()` detaches it from them. */
export interface LinkedAbort {
  readonly signal: AbortSignal;
  /** Aborts the linked signal itself (a timeout, a wake-up), leaving the sources alone. */
  abort(reason?: unknown): void;
  /** Removes the listeners from the sources; call it when the work the signal bounds is done. */
  dispose(): void;
}

/**
 * Links a fresh signal to `sources` (undefined ones are skipped); it aborts with the reason of the
 * first source that does. Unlike `AbortSignal.any`, the link is undone by `dispose()`, so a
 * long-lived source (shutdown, a poll) does not gather one entry per call over months.
 */
export function linkAbort(...sources: (AbortSignal | undefined)[]): LinkedAbort {
  const controller = new AbortController();
  const attached: { source: AbortSignal; onAbort: () => void }[] = [];
  const dispose = (): void => {
    for (const { source, onAbort } of attached.splice(0)) source.removeEventListener('abort', onAbort);
  };
  for (const source of sources) {
    if (source === undefined) continue;
    if (source.aborted) {
      controller.abort(source.reason);
      break;
    }
    const onAbort = (): void => {
      controller.abort(source.reason);
      dispose();
    };
    source.addEventListener('abort', onAbort, { once: true });
    attached.push({ source, onAbort });
  }
  if (controller.signal.aborted) dispose();
  const abort = (reason?: unknown): void => {
    controller.abort(reason);
    dispose();
  };
  return { signal: controller.signal, abort, dispose };
}
