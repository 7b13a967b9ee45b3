import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { chromium, type Browser, type BrowserContext, type Page } from "playwright-core";

/**
 * Debian's chromium, driven by playwright-core (which ships no browser of its own).
 * `.ci/run` installs the package; browser suites run against a real gateway.
 */
export const chromiumPath = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";

/** Launches headless Chromium with the flags CI's container needs. */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: chromiumPath,
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-dev-shm-usage"],
  });
}

/** Where failing browser tests leave their screenshots (git-ignored). */
export const screenshotDir = join(process.cwd(), "test-results", "screenshots");

/**
 * Runs `body` on a fresh page of its own context; if it throws, saves a full-page screenshot named after `name`
 * before rethrowing, so a red CI run shows what the browser showed.
 */
export async function withPage<T>(
  browser: Browser,
  name: string,
  body: (page: Page, context: BrowserContext) => Promise<T>,
): Promise<T> {
  const context = await browser.newContext();
  const page = await context.newPage();
  try {
    return await body(page, context);
  } catch (err) {
    mkdirSync(screenshotDir, { recursive: true });
    const file = join(screenshotDir, `${name.replace(/[^a-z0-9-]+/gi, "_")}.png`);
    await page.screenshot({ path: file, fullPage: true }).catch(() => undefined);
    throw err;
  } finally {
    await context.close();
  }
}
