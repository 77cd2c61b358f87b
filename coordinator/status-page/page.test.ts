import { createHash } from 'node:crypto';
import { Script } from 'node:vm';
import { describe, expect, it } from 'vitest';
import { clientScript } from './client.js';
import { renderSignInPage, renderStatusPage, statusPageCsp } from './page.js';
import { cookieValue } from '../http/credentials.js';

const hashOf = (text: string) => `'sha256-${createHash('sha256').update(text).digest('base64')}'`;

describe('status page document', () => {
  it('carries a script that parses, and nothing that could build HTML from data', () => {
    expect(() => new Script(clientScript)).not.toThrow();
    expect(clientScript).not.toMatch(/innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(|new Function/);
  });

  it('is allowed by its own CSP: the inline script and style match their hashes', () => {
    const html = renderStatusPage({ admin: false, signedIn: false, version: '1.2.3' });
    const scripts = [...html.matchAll(/<script>([\s\S]*?)<\/script>/g)].map((m) => m[1] as string);
    const styles = [...html.matchAll(/<style>([\s\S]*?)<\/style>/g)].map((m) => m[1] as string);
    expect(scripts).toHaveLength(1);
    expect(styles).toHaveLength(1);
    expect(statusPageCsp).toContain(`script-src ${hashOf(scripts[0] as string)}`);
    expect(statusPageCsp).toContain(`style-src ${hashOf(styles[0] as string)}`);
    expect(statusPageCsp).toContain("default-src 'none'");
    expect(html).not.toMatch(/https?:\/\/(?!www\.w3\.org)/);
  });

  it('tells the script about admin rights only through a JSON island', () => {
    expect(renderStatusPage({ admin: true, signedIn: true, version: 'x' })).toContain(
      '<script id="baton-config" type="application/json">{"admin":true}</script>',
    );
    expect(renderStatusPage({ admin: false, signedIn: false, version: 'x' })).not.toContain('sign-out');
  });

  it('escapes the sign-in message', () => {
    expect(renderSignInPage({ message: '<b>no</b>' })).toContain('&lt;b&gt;no&lt;/b&gt;');
  });

  it('reads the session cookie among others', () => {
    expect(cookieValue('a=1; baton_token=abc%3Ddef; b=2', 'baton_token')).toBe('abc=def');
    expect(cookieValue('a=1', 'baton_token')).toBeUndefined();
    expect(cookieValue(undefined, 'baton_token')).toBeUndefined();
    expect(cookieValue('baton_token=%E0%A4%A', 'baton_token')).toBeUndefined();
  });
});
