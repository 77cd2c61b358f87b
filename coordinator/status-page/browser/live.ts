/// <reference lib="dom" />
import type { Dom, ShowToast } from './dom.js';
import type { StreamEvents, StreamSnapshot } from './types.js';

/**
 * The live stream (GET /v1/events/stream) and the connection badge: snapshots and events go to the
 * page; a stream closed for good is tried again, unless the session ended (browser code, see dom.ts).
 */
export function createLiveConnection(
  dom: Dom,
  options: { showToast: ShowToast; onSnapshot: (snapshot: StreamSnapshot) => void; onEvents: (events: StreamEvents) => void },
) {
  const retryAfterMs = 3000;
  let source: EventSource | null = null;

  function setConnection(state: 'live' | 'connecting' | 'down', text: string): void {
    const badge = dom.byId('connection');
    badge.setAttribute('data-state', state);
    badge.replaceChildren(dom.el('span', { className: 'dot' }), dom.text(text));
  }

  function retryLater(): void {
    setTimeout(connect, retryAfterMs);
  }

  function connect(): void {
    if (source) source.close();
    setConnection('connecting', 'Connecting…');
    const stream = new EventSource('/v1/events/stream');
    source = stream;
    stream.addEventListener('open', () => setConnection('live', 'Live'));
    stream.addEventListener('snapshot', (message) => {
      setConnection('live', 'Live');
      options.onSnapshot(JSON.parse(message.data) as StreamSnapshot);
    });
    stream.addEventListener('events', (message) => options.onEvents(JSON.parse(message.data) as StreamEvents));
    stream.addEventListener('error', () => {
      if (stream.readyState !== EventSource.CLOSED) {
        setConnection('connecting', 'Reconnecting…');
        return;
      }
      setConnection('down', 'Disconnected');
      // Closed for good: maybe the session ended. Ask once, then try again.
      fetch('/v1/status', { credentials: 'same-origin' }).then((answer) => {
        if (answer.status !== 401) return retryLater();
        setConnection('down', 'Signed out');
        options.showToast('Your session has ended: reload the page to sign in again.', true);
      }, retryLater);
    });
  }

  return { connect };
}
