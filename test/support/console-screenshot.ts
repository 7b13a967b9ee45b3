// Takes the README's screenshot of the console's dashboard: a real gateway on
// the embedded database, a few findings from an analyzer, the page in Chromium.
//   npx tsx test/support/console-screenshot.ts [out.png]   (after `npm run console:build`)
import { Finding_Severity, Finding_Status, FindingService } from "../../gen/anvil/findings/v1/findings_pb.js";
import { launchChromium } from "./browser.js";
import { clientFor } from "./clients.js";
import { startServer } from "./server.js";

const out = process.argv[2] ?? "console/dashboard.png";
const server = await startServer("pglite");
const browser = await launchChromium();
try {
  const findings = clientFor(FindingService, "connect-json", server.baseUrl, await server.token("acme-editor"));
  const files = ["src/billing/invoice.ts", "src/billing/tax.ts", "src/auth/session.ts", "src/api/routes.ts", "src/db/pool.ts"];
  const kinds = [
    ["sql-injection", "query built from user input", Finding_Severity.CRITICAL],
    ["null-dereference", "value 'customer' may be null", Finding_Severity.HIGH],
    ["code-smell", "function is 140 lines long", Finding_Severity.MEDIUM],
    ["unused-variable", "'tmp' is assigned but never used", Finding_Severity.LOW],
    ["style", "prefer const", Finding_Severity.INFO],
  ] as const;
  const requests = Array.from({ length: 23 }, (_, i) => {
    const [issueType, message, severity] = kinds[(i * 7) % kinds.length]!;
    return { finding: { filePath: files[i % files.length]!, line: 10 + i * 3, severity, issueType, ruleId: `demo/${issueType}-${i}`, message, source: "semgrep" } };
  });
  const created = (await findings.batchCreateFindings({ requests })).findings;
  for (const f of created.slice(0, 6)) await findings.updateFinding({ finding: { id: f.id, status: Finding_Status.RESOLVED }, updateMask: { paths: ["status"] } });
  for (const f of created.slice(6, 9)) await findings.updateFinding({ finding: { id: f.id, status: Finding_Status.ACKNOWLEDGED }, updateMask: { paths: ["status"] } });
  const page = await browser.newPage({ viewport: { width: 1280, height: 1000 }, colorScheme: "light" });
  await page.goto(`${server.baseUrl}/console`);
  await page.getByLabel("API key or token").fill(await server.token("acme-editor"));
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("row").filter({ hasText: "src/" }).first().waitFor();
  await page.screenshot({ path: out });
  process.stdout.write(`wrote ${out}\n`);
} finally {
  await browser.close();
  await server.close();
}
