import { journalEntrySchema, type JournalEntry, type UpdateJournal } from '../state-file.js';

/** The journal in memory, for tests: entries are copied in and out, and writes can be made to fail. */
export class MemoryUpdateJournal implements UpdateJournal {
  private readonly entries = new Map<string, JournalEntry>();
  /** Every write and clear, in order. */
  readonly history: Array<{ op: 'write' | 'clear'; service: string; entry?: JournalEntry }> = [];
  /** When set, the next write rejects with this error (then it is cleared). */
  failNextWrite: Error | undefined;
  /** Called after every write or clear (crash tests snapshot here). */
  onChange: ((op: 'write' | 'clear', service: string) => void) | undefined;

  constructor(initial: Iterable<JournalEntry> = []) {
    for (const entry of initial) this.entries.set(entry.service, structuredClone(entry));
  }

  read(service: string): Promise<JournalEntry | undefined> {
    const entry = this.entries.get(service);
    return Promise.resolve(entry === undefined ? undefined : structuredClone(entry));
  }

  write(service: string, entry: JournalEntry): Promise<void> {
    if (this.failNextWrite) {
      const error = this.failNextWrite;
      this.failNextWrite = undefined;
      return Promise.reject(error);
    }
    const valid = journalEntrySchema.parse(entry);
    this.entries.set(service, structuredClone(valid));
    this.history.push({ op: 'write', service, entry: structuredClone(valid) });
    this.onChange?.('write', service);
    return Promise.resolve();
  }

  clear(service: string): Promise<void> {
    this.entries.delete(service);
    this.history.push({ op: 'clear', service });
    this.onChange?.('clear', service);
    return Promise.resolve();
  }

  snapshot(): JournalEntry[] {
    return [...this.entries.values()].map((e) => structuredClone(e));
  }
}
