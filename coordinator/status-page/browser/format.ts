/**
 * How the page writes digests, images, durations and times: pure functions, sent to the browser
 * as source text like the rest of this folder (see dom.ts).
 */
export function createFormat() {
  /** "sha256:0123456789ab" for a full digest; a dash for none. */
  function shortDigest(digest: string | null | undefined): string {
    if (!digest) return '—';
    const parts = String(digest).split(':');
    return parts.length === 2 ? `${parts[0]}:${(parts[1] as string).slice(0, 12)}` : String(digest).slice(0, 19);
  }

  /** "127.0.0.1:5000/team/app:v2" -> "app:v2"; digests are left out. */
  function imageName(image: string | null | undefined): string | null {
    if (!image) return null;
    const bare = String(image).split('@')[0] as string;
    const last = bare.slice(bare.lastIndexOf('/') + 1);
    return last.indexOf(':') === -1 ? `${last}:latest` : last;
  }

  function duration(ms: number | null | undefined): string {
    if (ms === null || ms === undefined || !isFinite(ms)) return '—';
    const s = Math.max(0, Math.round(ms / 1000));
    if (s < 60) return `${s} s`;
    const m = Math.floor(s / 60);
    if (m < 60) return s % 60 ? `${m} min ${s % 60} s` : `${m} min`;
    const h = Math.floor(m / 60);
    if (h < 48) return `${h} h ${m % 60} min`;
    return `${Math.floor(h / 24)} d ${h % 24} h`;
  }

  function ago(atMs: number, nowMs: number): string {
    const ms = nowMs - atMs;
    if (ms < 1500) return 'just now';
    return `${duration(ms)} ago`;
  }

  /** "09:05:03" in the browser's time zone. */
  function timeOfDay(atMs: number): string {
    const d = new Date(atMs);
    const two = (n: number) => (n < 10 ? `0${n}` : String(n));
    return `${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}`;
  }

  /** Full digests and rollout ids drown a one-line message; the full text stays in the title. */
  function compact(text: string): string {
    return String(text)
      .replace(/\b(sha256:[a-f0-9]{12})[a-f0-9]{52}\b/g, '$1')
      .replace(/\b(sha512:[a-f0-9]{12})[a-f0-9]{116}\b/g, '$1')
      .replace(/\b([0-9a-f]{8})-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b/g, '$1');
  }

  return { shortDigest, imageName, duration, ago, timeOfDay, compact };
}
export type Format = ReturnType<typeof createFormat>;
