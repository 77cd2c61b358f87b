/// <reference lib="dom" />
import type { Dom } from './dom.js';
import type { Format } from './format.js';
import type { BatonEvent } from './types.js';

/** The recent events: the last `maxEvents` kept by seq, newest first, renewals hidden unless asked for (browser code, see dom.ts). */
export function createEventsView(dom: Dom, format: Format, options: { maxEvents: number }) {
  const { el } = dom;
  const events = new Map<number, BatonEvent>();
  let showRenewals = false;
  let shownEvents = 15;
  const eventClass: Readonly<Record<string, string>> = {
    halt: 'bad',
    abort: 'bad',
    expiry: 'warn',
    refusal: 'muted',
    pause: 'warn',
    resume: 'info',
    'rollout-completed': 'ok',
    'rollout-opened': 'info',
    grant: 'info',
    release: 'ok',
    renew: 'muted',
    'rollout-superseded': 'muted',
    'node-joined': 'info',
    'node-forgotten': 'warn',
    'registry-push': 'info',
    drain: 'warn',
    undrain: 'info',
  };

  function eventText(e: BatonEvent): string {
    if (e.message) return format.compact(e.message);
    const parts: string[] = [];
    if (e.nodeId) parts.push(`node ${e.nodeId}`);
    if (e.digest) parts.push(format.shortDigest(e.digest));
    if (e.outcome) parts.push(e.outcome);
    if (e.reason) parts.push(e.reason);
    return parts.join(' · ');
  }

  function add(e: BatonEvent): void {
    events.set(e.seq, e);
    if (events.size <= options.maxEvents) return;
    const oldestFirst = Array.from(events.keys()).sort((a, b) => a - b);
    for (const seq of oldestFirst.slice(0, oldestFirst.length - options.maxEvents)) events.delete(seq);
  }

  function render(): void {
    const matching = Array.from(events.values())
      .filter((e) => showRenewals || e.type !== 'renew')
      .sort((a, b) => b.seq - a.seq);
    const items = matching.slice(0, shownEvents).map((e) => {
      const kind = e.type === 'release' && e.outcome === 'failed' ? 'bad' : eventClass[e.type] || 'muted';
      return el(
        'li',
        { className: 'event', 'data-testid': 'event', 'data-seq': e.seq, 'data-type': e.type },
        el('time', { className: 'muted small', text: format.timeOfDay(e.atMs), title: new Date(e.atMs).toISOString() }),
        el('span', { className: `chip chip-${kind}`, text: e.type + (e.outcome ? ` · ${e.outcome}` : '') }),
        el('span', { className: 'event-group muted', text: e.group }),
        el('span', { className: 'event-text', 'data-testid': 'event-text', title: e.message || '', text: eventText(e) }),
      );
    });
    if (items.length === 0) items.push(el('li', { className: 'muted', text: 'No events yet.' }));
    dom.replaceAll(dom.byId('events-list'), items);
    const more = dom.byId('more-events');
    more.hidden = !(matching.length > shownEvents);
    more.textContent = `Show ${Math.min(50, matching.length - shownEvents)} more`;
  }

  function setShowRenewals(show: boolean): void {
    showRenewals = show;
    render();
  }

  function showMore(): void {
    shownEvents += 50;
    render();
  }

  return { add, eventText, render, setShowRenewals, showMore };
}
