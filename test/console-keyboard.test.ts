import type { Browser, Locator, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Finding_Severity, FindingService } from "../gen/anvil/findings/v1/findings_pb.js";
import { launchChromium, withPage } from "./support/browser.js";
import { clientFor } from "./support/clients.js";
import { accessibilityProblems, ensureConsoleBuilt } from "./support/console-page.js";
import { startServer, type TestServer } from "./support/server.js";

/**
 * The console with the keyboard only: no click, no fill — Tab, Shift+Tab,
 * Enter, Space and the arrow keys, as a person without a mouse uses it. Every
 * control is found by its role and accessible name, and shows where focus is.
 */

const kind = process.env.TEST_DATABASE_URL ? "postgres" : "pglite";

/** Whether `target` has focus now. */
const focused = (target: Locator) => target.evaluate((el) => el === document.activeElement);

/** Presses Tab (or Shift+Tab) until `target` has focus (at most `max` times); fails naming what had focus instead. */
async function tabTo(page: Page, target: Locator, key: "Tab" | "Shift+Tab" = "Tab", max = 80): Promise<void> {
  for (let i = 0; i < max; i++) {
    await page.keyboard.press(key);
    if (await focused(target)) return;
  }
  const at = await page.evaluate(() => document.activeElement?.outerHTML.slice(0, 120));
  throw new Error(`Tab never reached the target; focus is on ${at}`);
}

/** Whether the focused element shows it: a visible outline (the console's :focus-visible ring) of at least 2px. */
async function focusVisible(target: Locator): Promise<boolean> {
  return target.evaluate((el) => {
    const style = getComputedStyle(el);
    return el.matches(":focus-visible") && style.outlineStyle !== "none" && parseFloat(style.outlineWidth) >= 2;
  });
}

describe(`the console with the keyboard only, in Chromium, on ${kind}`, () => {
  let server: TestServer;
  let browser: Browser;
  beforeAll(async () => {
    ensureConsoleBuilt();
    [server, browser] = await Promise.all([startServer(kind), launchChromium()]);
  });
  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  it("signs in, moves between pages and triages a finding with Tab, Enter, Space and arrows, focus always visible", async () => {
    const editor = clientFor(FindingService, "connect-json", server.baseUrl, await server.token("acme-editor"));
    await editor.createFinding({
      finding: { filePath: "src/keys.ts", line: 3, severity: Finding_Severity.HIGH, issueType: "null-dereference", ruleId: "kb/1", message: "may be null", source: "lint" },
    });
    await withPage(browser, "keyboard-only", async (page) => {
      await page.goto(`${server.baseUrl}/console`);
      await page.getByRole("heading", { name: "Sign in to Anvil" }).waitFor();

      // Sign in: Tab to the field, type, Enter submits.
      const field = page.getByRole("textbox", { name: "API key or token" });
      await tabTo(page, field);
      expect(await focusVisible(field)).toBe(true);
      await page.keyboard.type(await server.token("acme-editor"));
      await page.keyboard.press("Enter");
      await page.getByRole("heading", { level: 1, name: "Findings" }).waitFor();

      // The first Tab on a page offers the skip link.
      await page.keyboard.press("Tab");
      const skip = page.getByRole("link", { name: "Skip to content" });
      expect(await focused(skip)).toBe(true);
      expect(await focusVisible(skip)).toBe(true);

      // Pages through the main navigation: Enter follows a link and focus lands on the new page's heading,
      // from where Shift+Tab goes back up to the navigation.
      const nav = page.getByRole("navigation", { name: "Main" });
      for (const [i, name] of ["Workflows", "Operations", "Findings"].entries()) {
        const link = nav.getByRole("link", { name });
        await tabTo(page, link, i === 0 ? "Tab" : "Shift+Tab");
        expect(await focusVisible(link), name).toBe(true);
        await page.keyboard.press("Enter");
        const heading = page.getByRole("heading", { level: 1, name });
        await heading.waitFor();
        await expect.poll(() => focused(heading), { message: `focus on the ${name} heading` }).toBe(true);
        expect(await link.getAttribute("aria-current")).toBe("page");
        expect(await accessibilityProblems(page)).toEqual([]);
      }

      // Triage: Tab to the row's status, arrow keys choose, Space on the named button applies.
      const row = page.getByRole("row").filter({ hasText: "src/keys.ts:3" });
      await row.waitFor();
      const status = row.getByRole("combobox", { name: "New status for src/keys.ts:3" });
      await tabTo(page, status);
      expect(await focusVisible(status)).toBe(true);
      for (let i = 0; i < 6 && (await status.evaluate((s) => (s as HTMLSelectElement).selectedOptions[0]?.text)) !== "Acknowledged"; i++) {
        await page.keyboard.press("ArrowDown");
      }
      expect(await status.evaluate((s) => (s as HTMLSelectElement).selectedOptions[0]?.text)).toBe("Acknowledged");
      const apply = row.getByRole("button", { name: "Apply status to src/keys.ts:3" });
      await page.keyboard.press("Tab");
      expect(await focused(apply)).toBe(true);
      expect(await focusVisible(apply)).toBe(true);
      await page.keyboard.press("Space");
      await expect.poll(() => row.getByRole("cell").nth(1).innerText()).toBe("Acknowledged");

      // Shift+Tab walks back the same way, to the status just applied.
      await tabTo(page, status, "Shift+Tab", 3);
      expect(await accessibilityProblems(page)).toEqual([]);
    });
  });
});
