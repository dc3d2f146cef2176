/**
 * Headless Chromium for the visualizer's browser tests, driven by playwright-core with Debian's
 * `chromium` (or CHROMIUM_PATH). Finds the executable without a shell, launches it with no
 * network services, records console errors per page, and saves screenshots under
 * .tap/viz-artifacts/. The caller closes the browser (in a teardown, so also on failure).
 */
import { accessSync, constants, mkdirSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type Page } from 'playwright-core';

export const artifactDir = fileURLToPath(new URL('../../../.tap/viz-artifacts/', import.meta.url));

/** Path of a Chromium executable, or null when none is installed. */
export function findChromium(): string | null {
  const explicit = process.env.CHROMIUM_PATH;
  if (explicit) return explicit;
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    for (const name of ['chromium', 'chromium-browser', 'google-chrome-stable', 'google-chrome']) {
      try {
        accessSync(join(dir, name), constants.X_OK);
        return join(dir, name);
      } catch {
        /* not here */
      }
    }
  }
  return null;
}

export async function launch(executablePath: string): Promise<Browser> {
  return chromium.launch({
    executablePath,
    headless: true,
    timeout: 60_000,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--disable-dev-shm-usage',
    ],
  });
}

export interface WatchedPage {
  page: Page;
  /** console errors and uncaught page errors, in order */
  errors: string[];
  close(): Promise<void>;
}

export async function openPage(browser: Browser, url: string, readyTimeoutMs = 60_000, viewport = { width: 1400, height: 1200 }): Promise<WatchedPage> {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  const errors: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(`console: ${m.text()}`);
  });
  page.on('pageerror', (e) => errors.push(`page: ${e.message}`));
  page.on('requestfailed', (r) => errors.push(`request failed: ${r.url()} ${r.failure()?.errorText ?? ''}`));
  await page.goto(url);
  await page.waitForSelector('body[data-ready]', { timeout: readyTimeoutMs });
  const ready = await page.evaluate(() => document.body.dataset.ready);
  if (ready !== '1') throw new Error(`the page did not start: ${errors.join('; ')}`);
  return { page, errors, close: () => context.close() };
}

export async function screenshot(page: Page, name: string): Promise<string> {
  mkdirSync(artifactDir, { recursive: true });
  const path = join(artifactDir, name);
  await page.screenshot({ path, fullPage: true });
  return path;
}
