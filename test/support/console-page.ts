import { execFileSync } from "node:child_process";
import AxeBuilder from "@axe-core/playwright";
import type { Page } from "playwright-core";

/** Builds the console when its sources are newer than the build, as `npm test` does before the suites (pretest). */
export function ensureConsoleBuilt(): void {
  execFileSync(process.execPath, [".ci/ensure-console.mjs"], { stdio: "inherit" });
}

/** axe's serious and critical violations on the page as it is now, as "rule: target" lines. */
export async function accessibilityProblems(page: Page): Promise<string[]> {
  const result = await new AxeBuilder({ page }).analyze();
  return result.violations
    .filter((v) => v.impact === "serious" || v.impact === "critical")
    .flatMap((v) => v.nodes.map((n) => `${v.id}: ${n.target.join(" ")}`));
}

/** Opens the console at `baseUrl` and signs in by pasting `credential`; resolves on the findings dashboard. */
export async function signInWithCredential(page: Page, baseUrl: string, credential: string): Promise<void> {
  await page.goto(`${baseUrl}/console`);
  await page.getByLabel("API key or token").fill(credential);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("heading", { level: 1, name: "Findings" }).waitFor();
}
