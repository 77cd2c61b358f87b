import Database from 'better-sqlite3';
import { request } from 'undici';

export interface JsonAnswer {
  status: number;
  body: unknown;
  headers: Record<string, string | string[] | undefined>;
}

/** One HTTP call on loopback; `rawBody` sends bytes as they are (for malformed-input tests). */
export async function call(
  baseUrl: string,
  method: 'GET' | 'POST' | 'DELETE',
  path: string,
  options: { json?: unknown; rawBody?: string; token?: string; contentType?: string } = {},
): Promise<JsonAnswer> {
  const headers: Record<string, string> = {};
  if (options.token !== undefined) headers.authorization = `Bearer ${options.token}`;
  let body: string | undefined;
  if (options.json !== undefined) body = JSON.stringify(options.json);
  if (options.rawBody !== undefined) body = options.rawBody;
  if (body !== undefined) headers['content-type'] = options.contentType ?? 'application/json';
  const answer = await request(`${baseUrl}${path}`, { method, headers, body, headersTimeout: 10_000, bodyTimeout: 10_000 });
  const text = await answer.body.text();
  let parsed: unknown = text;
  try {
    parsed = text === '' ? undefined : JSON.parse(text);
  } catch {
    // Not JSON: keep the text.
  }
  return { status: answer.statusCode, body: parsed, headers: answer.headers };
}

/** Every row of every coordinator table, to prove a rejected request changed nothing stored. */
export function snapshotDatabase(dataFile: string): string {
  const db = new Database(dataFile, { readonly: true, fileMustExist: true });
  try {
    const tables = db
      .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")
      .all() as { name: string }[];
    const snapshot: Record<string, unknown[]> = {};
    for (const { name } of tables) snapshot[name] = db.prepare(`SELECT * FROM "${name}" ORDER BY rowid`).all();
    return JSON.stringify(snapshot);
  } finally {
    db.close();
  }
}

export function digestOf(seed: string): string {
  const hex = Buffer.from(seed).toString('hex').padEnd(64, '0').slice(0, 64);
  return `sha256:${hex}`;
}
