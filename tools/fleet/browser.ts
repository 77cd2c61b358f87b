import { chromium, type Browser } from 'playwright-core';

/** Headless Chromium from the system package, as the status page tests run it in a container. */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: '/usr/bin/chromium',
    headless: true,
    // No sandbox in a container; no GPU; none of the browser's own traffic next to the page's.
    args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-quic'],
  });
}
