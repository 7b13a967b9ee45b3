import { randomUUID } from "node:crypto";
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Finding_Severity, Finding_Status, type FindingSchema, FindingService } from "../gen/anvil/findings/v1/findings_pb.js";
import { launchChromium, withPage } from "./support/browser.js";
import { clientFor } from "./support/clients.js";
import { accessibilityProblems, ensureConsoleBuilt, signInWithCredential } from "./support/console-page.js";
import { Workflow_State, WorkflowService } from "../gen/anvil/workflows/v1/workflows_pb.js";
import { AgentService } from "../gen/anvil/agents/v1/agents_pb.js";
import { Ipa_State, IpaService } from "../gen/anvil/ipas/v1/ipas_pb.js";
import { claim, operationClients, runWorkflow } from "./support/operations.js";
import { startReferenceWorker } from "./support/reference-worker.js";
import { startServer, type TestServer } from "./support/server.js";

// Browser suites run on PostgreSQL when the run has it (CI does), else on the embedded database: never skipped.
const kind = process.env.TEST_DATABASE_URL ? "postgres" : "pglite";

const finding = (over: MessageInitShape<typeof FindingSchema> = {}): MessageInitShape<typeof FindingSchema> => ({
  filePath: "src/a.ts",
  line: 1,
  severity: Finding_Severity.MEDIUM,
  issueType: "code-smell",
  ruleId: `rule/${randomUUID()}`,
  message: "something is off",
  source: "lint",
  ...over,
});

describe(`the console, in Chromium, on ${kind}`, () => {
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

  const open = async (page: Page, keyId: string) => signInWithCredential(page, server.baseUrl, await server.token(keyId));
  const count = (page: Page, label: string) => page.getByRole("article", { name: label }).locator(".card-value");

  it("is served from the gateway's port: index for every client route, hashed assets immutable, compressed", async () => {
    for (const path of ["/console", "/console/", "/console/operations/some-id"]) {
      const res = await fetch(server.baseUrl + path, { headers: { "accept-encoding": "br" } });
      expect(res.status).toBe(200);
      expect(res.headers.get("content-type")).toBe("text/html; charset=utf-8");
      expect(res.headers.get("cache-control")).toBe("no-cache");
      expect(res.headers.get("content-security-policy")).toContain("default-src 'self'");
      expect(await res.text()).toContain('<div id="root">');
    }
    const html = await (await fetch(`${server.baseUrl}/console`)).text();
    const script = /src="(\/console\/assets\/[^"]+\.js)"/.exec(html)![1]!;
    const js = await fetch(server.baseUrl + script, { headers: { "accept-encoding": "gzip" } });
    expect(js.headers.get("content-type")).toBe("text/javascript; charset=utf-8");
    expect(js.headers.get("cache-control")).toBe("public, max-age=31536000, immutable");
    expect(js.headers.get("content-encoding")).toBe("gzip");
    // The first load (the page, its script and its stylesheet), as a browser fetches it compressed: under 300 KB.
    const css = /href="(\/console\/assets\/[^"]+\.css)"/.exec(html)![1]!;
    let firstLoad = 0;
    for (const path of ["/console", script, css]) {
      const res = await fetch(server.baseUrl + path, { headers: { "accept-encoding": "br" } });
      expect(res.headers.get("content-encoding")).toBe("br");
      firstLoad += Number(res.headers.get("content-length"));
    }
    expect(firstLoad).toBeLessThan(300_000);
    const again = await fetch(server.baseUrl + script, { headers: { "if-none-match": js.headers.get("etag")! } });
    expect(again.status).toBe(304);
    // A stale page's missing asset is a 404, never index.html; the console takes reads only.
    expect((await fetch(`${server.baseUrl}/console/assets/gone-123.js`)).status).toBe(404);
    expect((await fetch(`${server.baseUrl}/console`, { method: "POST" })).status).toBe(405);
  });

  it("signs in with a token and shows who is signed in, the tenant and the roles; the credential never enters a URL", async () => {
    await withPage(browser, "sign-in", async (page) => {
      const urls: string[] = [];
      page.on("request", (r) => urls.push(r.url()));
      await page.goto(`${server.baseUrl}/console`);
      await page.getByRole("heading", { name: "Sign in to Anvil" }).waitFor();
      expect(await accessibilityProblems(page)).toEqual([]);
      const token = await server.token("acme-admin");
      await page.getByLabel("API key or token").fill(token);
      await page.getByRole("button", { name: "Sign in" }).click();
      const who = page.getByRole("region", { name: "Signed in" });
      await expect.poll(() => who.innerText()).toMatch(/Signed in as tester.*service-account token/s);
      expect(await who.innerText()).toMatch(/Tenant\s+acme/);
      expect(await who.innerText()).toMatch(/Roles\s+admin/);
      expect(urls.some((u) => u.includes(token))).toBe(false);
      // Kept for the tab: a reload stays signed in.
      await page.reload();
      await page.getByRole("heading", { level: 1, name: "Findings" }).waitFor();
      await page.getByRole("button", { name: "Sign out" }).click();
      await page.getByRole("heading", { name: "Sign in to Anvil" }).waitFor();
    });
  });

  it("refuses a credential the gateway refuses, saying so", async () => {
    await withPage(browser, "bad-credential", async (page) => {
      await page.goto(`${server.baseUrl}/console`);
      await page.getByLabel("API key or token").fill("anvil_not-a-real-key");
      await page.getByRole("button", { name: "Sign in" }).click();
      await expect.poll(() => page.getByRole("alert").innerText()).toMatch(/not signed in, or your credential is no longer valid/);
    });
  });

  it("updates the dashboard's counts and trend without a reload when findings are batch-created", async () => {
    await withPage(browser, "dashboard-live", async (page) => {
      await open(page, "acme-viewer");
      await expect.poll(() => count(page, "Total findings").innerText()).toBe("0");
      expect(await accessibilityProblems(page)).toEqual([]);
      const analyzer = clientFor(FindingService, "connect-json", server.baseUrl, await server.token("acme-analyzer"));
      await analyzer.batchCreateFindings({
        requests: [
          { finding: finding({ severity: Finding_Severity.CRITICAL, filePath: "src/pay.ts" }) },
          { finding: finding({ severity: Finding_Severity.CRITICAL, filePath: "src/pay.ts", line: 9 }) },
          { finding: finding({ severity: Finding_Severity.LOW }) },
        ],
      });
      await expect.poll(() => count(page, "Total findings").innerText(), { timeout: 10_000 }).toBe("3");
      expect(await count(page, "Critical findings").innerText()).toBe("2");
      expect(await count(page, "Low findings").innerText()).toBe("1");
      await expect.poll(() => page.getByTestId("trend-summary").innerText()).toBe("3 new and 0 resolved over the last 30 days");
      // The table refreshes on its own interval too: the new row appears without a reload.
      await page.getByRole("row").filter({ hasText: "src/pay.ts:9" }).waitFor();
      const files = page.getByRole("region", { name: "Files with the most unresolved findings" }).getByRole("listitem");
      expect(await files.allInnerTexts()).toEqual(["src/pay.ts 2 unresolved", "src/a.ts 1 unresolved"]);
      expect(await accessibilityProblems(page)).toEqual([]);
    });
  });

  it("offers a viewer no triage, and shows an editor the server's precondition error for a refused transition", async () => {
    const editor = clientFor(FindingService, "connect-json", server.baseUrl, await server.token("acme-editor"));
    const created = (await editor.createFinding({ finding: finding({ filePath: "src/triage.ts", line: 7 }) })).finding!;
    await editor.updateFinding({ finding: { id: created.id, status: Finding_Status.RESOLVED }, updateMask: { paths: ["status"] } });
    await withPage(browser, "triage-viewer", async (page) => {
      await open(page, "acme-viewer");
      await page.getByRole("row").filter({ hasText: "src/triage.ts:7" }).waitFor();
      expect(await page.getByRole("columnheader", { name: "Triage" }).count()).toBe(0);
      expect(await page.getByRole("button", { name: /Apply status/ }).count()).toBe(0);
    });
    await withPage(browser, "triage-editor", async (page) => {
      await open(page, "acme-editor");
      const row = page.getByRole("row").filter({ hasText: "src/triage.ts:7" });
      await row.getByLabel("New status for src/triage.ts:7").selectOption({ label: "Acknowledged" });
      await row.getByRole("button", { name: "Apply status to src/triage.ts:7" }).click();
      const alert = row.getByRole("alert");
      await expect.poll(() => alert.innerText()).toMatch(/Not allowed in its current state/);
      // The reopen the server allows goes through, and the row shows the new status.
      await row.getByLabel("New status for src/triage.ts:7").selectOption({ label: "Open" });
      await row.getByRole("button", { name: "Apply status to src/triage.ts:7" }).click();
      await expect.poll(() => row.getByRole("cell").nth(1).innerText()).toBe("Open");
    });
  });

  it("moves an operation's progress live as the reference worker (its own process) reports, without a reload, and lists it", async () => {
    const c = await operationClients(server);
    // Four parts over four seconds: a report a second, each moving the bar a quarter.
    const op = await runWorkflow(c, [{ name: "build", kind: "demo", config: { seconds: 4, steps: 4 } }]);
    await withPage(browser, "operation-live", async (page) => {
      await open(page, "acme-viewer");
      await page.getByRole("link", { name: "Operations" }).click();
      await page.getByRole("heading", { level: 1, name: "Operations" }).waitFor();
      await page.getByRole("link", { name: op.id.slice(0, 8) }).waitFor();
      expect(await accessibilityProblems(page)).toEqual([]);
      await page.getByRole("link", { name: op.id.slice(0, 8) }).click();
      await page.getByRole("heading", { level: 1, name: `Operation ${op.id.slice(0, 8)}` }).waitFor();
      const state = page.getByTestId("operation-state");
      const progress = page.getByTestId("operation-progress");
      await expect.poll(() => state.innerText()).toBe("Queued");
      // A viewer may watch but not cancel.
      expect(await page.getByRole("button", { name: "Cancel operation" }).count()).toBe(0);
      // The page is open and waiting before any work starts: every move of the bar comes over the stream.
      const navigations: string[] = [];
      page.on("framenavigated", (f) => navigations.push(f.url()));
      const seen = new Set<string>();
      const worker = await startReferenceWorker(server.baseUrl, await server.token("acme-worker"), "demo");
      try {
        await expect
          .poll(async () => (seen.add(await progress.innerText()), state.innerText()), { timeout: 30_000, interval: 100 })
          .toBe("Succeeded");
      } finally {
        await worker.stop();
      }
      // At least two of the worker's intermediate reports were shown on their way to 100%.
      expect([...seen].filter((p) => ["25%", "50%", "75%"].includes(p)).length, [...seen].join(" ")).toBeGreaterThanOrEqual(2);
      expect(await progress.innerText()).toBe("100%");
      expect(navigations).toEqual([]);
      expect(await page.getByRole("list", { name: "Events" }).innerText()).toMatch(/Stage: part 2 of 4[\s\S]*Progress 100%/);
      expect(worker.output.join("")).toContain("claiming demo");
      expect(await accessibilityProblems(page)).toEqual([]);
    });
  });

  it("shows a saga's compensations live: compensating, each step undone, then failed", async () => {
    const c = await operationClients(server);
    const steps = ["reserve", "charge"].map((name, i) => ({ name, kind: "console-saga", dependsOn: i === 0 ? [] : ["reserve"], compensation: { kind: "console-undo" } }));
    const op = await runWorkflow(c, [...steps, { name: "ship", kind: "console-saga", dependsOn: ["charge"] }]);
    await withPage(browser, "operation-saga", async (page) => {
      await open(page, "acme-viewer");
      await page.goto(`${server.baseUrl}/console/operations/${op.id}`);
      const state = page.getByTestId("operation-state");
      await expect.poll(() => state.innerText()).toBe("Queued");
      const done = async (kind: string) => {
        const t = (await claim(c, "console-worker", { kinds: [kind] }))!;
        return c.workers.completeTask({ taskId: t.id, leaseToken: t.leaseToken, outcome: { case: "result", value: { ok: true } } });
      };
      await done("console-saga");
      await done("console-saga");
      const ship = (await claim(c, "console-worker", { kinds: ["console-saga"] }))!;
      await c.workers.completeTask({ taskId: ship.id, leaseToken: ship.leaseToken, outcome: { case: "error", value: { code: 9, message: "no courier", retryable: false } } });
      await expect.poll(() => state.innerText()).toBe("Compensating");
      const list = page.getByRole("list", { name: "Compensations" });
      await expect.poll(() => list.innerText()).toMatch(/charge Pending[\s\S]*reserve Pending/);
      await done("console-undo");
      await expect.poll(() => list.innerText()).toMatch(/charge Undone[\s\S]*reserve Pending/);
      await done("console-undo");
      await expect.poll(() => state.innerText()).toBe("Failed");
      expect(await list.innerText()).toMatch(/charge Undone[\s\S]*reserve Undone/);
      expect(await page.getByRole("list", { name: "Events" }).innerText()).toMatch(/Compensating charge, reserve after: no courier/);
      expect(await accessibilityProblems(page)).toEqual([]);
    });
  });

  it("lets an editor cancel a running operation", async () => {
    const c = await operationClients(server);
    const op = await runWorkflow(c, [{ name: "slow" }]);
    await withPage(browser, "operation-cancel", async (page) => {
      await open(page, "acme-editor");
      await page.goto(`${server.baseUrl}/console/operations/${op.id}`);
      await page.getByRole("button", { name: "Cancel operation" }).click();
      await expect.poll(() => page.getByTestId("operation-state").innerText()).toMatch(/Cancelled|cancelling/);
    });
  });

  it("creates a workflow, showing a validation error at its field, and refuses a stale edit as a conflict", async () => {
    await withPage(browser, "workflow-edit", async (page) => {
      await open(page, "acme-editor");
      await page.getByRole("link", { name: "Workflows" }).click();
      await page.getByRole("heading", { level: 1, name: "Workflows" }).waitFor();
      expect(await accessibilityProblems(page)).toEqual([]);
      await page.getByRole("link", { name: "New workflow" }).click();
      await page.getByRole("heading", { level: 1, name: "New workflow" }).waitFor();
      await page.getByLabel("Name", { exact: true }).fill("Nightly build");
      await page.getByLabel("Step 1 name").fill("compile");
      await page.getByLabel("Step 1 kind").fill("Bad Kind");
      await page.getByRole("button", { name: "Create workflow" }).click();
      const kind = page.getByLabel("Step 1 kind");
      await expect.poll(() => kind.getAttribute("aria-invalid")).toBe("true");
      // The server's words, read with the field; the other fields are not blamed.
      const describedBy = (await kind.getAttribute("aria-describedby"))!;
      expect(await page.locator(`[id="${describedBy}"]`).innerText()).toMatch(/match|pattern/i);
      expect(await page.getByLabel("Step 1 name").getAttribute("aria-invalid")).toBe("false");
      expect(await page.getByRole("alert").first().innerText()).toMatch(/Some fields need attention/);
      expect(await accessibilityProblems(page)).toEqual([]);
      await kind.fill("build");
      await page.getByRole("button", { name: "Add a step" }).click();
      await page.getByLabel("Step 2 name").fill("test");
      await page.getByLabel("Step 2 kind").fill("build");
      await page.getByLabel("Step 2 depends on").fill("compile");
      await page.getByRole("button", { name: "Create workflow" }).click();
      await page.getByRole("heading", { level: 1, name: "Nightly build" }).waitFor();
      expect(await page.getByRole("img", { name: "2 steps" }).count()).toBe(1);
      expect(await accessibilityProblems(page)).toEqual([]);
      const id = /\/console\/workflows\/([0-9a-f-]{36})$/.exec(page.url())![1]!;

      // Someone else changes the workflow after the page loaded it: saving is refused, nothing is overwritten.
      const other = clientFor(WorkflowService, "connect-json", server.baseUrl, await server.token("acme-admin"));
      await other.updateWorkflow({ workflow: { id, description: "changed elsewhere" }, updateMask: { paths: ["description"] } });
      await page.getByLabel("Name", { exact: true }).fill("Nightly build (mine)");
      await page.getByRole("button", { name: "Save changes" }).click();
      await expect.poll(() => page.getByRole("alert").first().innerText()).toMatch(/Someone else changed this meanwhile/);
      expect((await other.getWorkflow({ id })).workflow!.displayName).toBe("Nightly build");
      await page.getByRole("button", { name: /Load the latest version/ }).click();
      await expect.poll(() => page.getByLabel("Description").inputValue()).toBe("changed elsewhere");
      await page.getByLabel("Name", { exact: true }).fill("Nightly build (mine)");
      await page.getByRole("button", { name: "Save changes" }).click();
      await page.getByRole("status").filter({ hasText: "Saved revision 3." }).waitFor();
    });
  });

  it("shows a viewer workflows without any write action", async () => {
    const editor = clientFor(WorkflowService, "connect-json", server.baseUrl, await server.token("acme-editor"));
    await editor.createWorkflow({ workflow: { displayName: "Read only", steps: [{ name: "a", kind: "demo" }] } });
    await withPage(browser, "workflow-viewer", async (page) => {
      await open(page, "acme-viewer");
      await page.getByRole("link", { name: "Workflows" }).click();
      await page.getByRole("link", { name: "Read only" }).click();
      await page.getByRole("heading", { level: 1, name: "Read only" }).waitFor();
      expect(await page.getByLabel("Name", { exact: true }).inputValue()).toBe("Read only");
      for (const name of ["Save changes", "Run workflow", "Add a step"]) expect(await page.getByRole("button", { name }).count(), name).toBe(0);
      await page.getByRole("link", { name: "← All workflows" }).click();
      await page.getByRole("heading", { level: 1, name: "Workflows" }).waitFor();
      expect(await page.getByRole("link", { name: "New workflow" }).count()).toBe(0);
    });
  });

  it("creates an API key showing its secret once, signs in with it, and shows admins users and the audit log", async () => {
    let secret = "";
    await withPage(browser, "api-keys", async (page) => {
      await open(page, "acme-admin");
      await page.getByRole("link", { name: "API keys" }).click();
      await page.getByRole("heading", { level: 1, name: "API keys" }).waitFor();
      expect(await accessibilityProblems(page)).toEqual([]);
      await page.getByLabel("Key name").fill("dashboard");
      await page.getByLabel("Roles").fill("viewer");
      await page.getByRole("button", { name: "Create key" }).click();
      secret = await page.getByTestId("api-key-secret").innerText();
      expect(secret).toMatch(/^anvil_/);
      expect(await page.getByRole("status").filter({ hasText: "shown this once" }).count()).toBe(1);
      await page.getByRole("button", { name: "I have copied it" }).click();
      await expect.poll(() => page.getByTestId("api-key-secret").count()).toBe(0);
      await page.getByRole("cell", { name: "dashboard", exact: true }).waitFor();
      await page.getByRole("link", { name: "Users" }).click();
      await page.getByRole("heading", { level: 1, name: "Users" }).waitFor();
      await page.getByLabel("E-mail").fill("not-an-address");
      await page.getByRole("button", { name: "Add user" }).click();
      await expect.poll(() => page.getByLabel("E-mail").getAttribute("aria-invalid")).toBe("true");
      await page.getByLabel("E-mail").fill("ada@example.com");
      await page.getByRole("button", { name: "Add user" }).click();
      await page.getByRole("cell", { name: "ada@example.com" }).waitFor();
      expect(await accessibilityProblems(page)).toEqual([]);
      await page.getByRole("link", { name: "Audit log" }).click();
      await page.getByRole("heading", { level: 1, name: "Audit log" }).waitFor();
      await page.getByRole("row").filter({ hasText: "anvil.apikeys.v1.ApiKeyService/CreateApiKey" }).filter({ hasText: "OK" }).first().waitFor();
      expect(await accessibilityProblems(page)).toEqual([]);
    });
    await withPage(browser, "api-key-sign-in", async (page) => {
      await page.goto(`${server.baseUrl}/console`);
      await page.getByLabel("API key or token").fill(secret);
      await page.getByRole("button", { name: "Sign in" }).click();
      const who = page.getByRole("region", { name: "Signed in" });
      await expect.poll(() => who.innerText()).toMatch(/Signed in as apikeys\/[0-9a-f-]{36} \(API key\)/);
      expect(await who.innerText()).toMatch(/Roles\s+viewer/);
      // A viewer's navigation offers neither key management nor the audit log.
      const nav = page.getByRole("navigation", { name: "Main" });
      expect(await nav.getByRole("link").allInnerTexts()).toEqual(["Findings", "Operations", "Workflows", "Agents", "IPAs"]);
    });
  });

  it("creates an agent and an IPA, lists the server's violations when a deploy is refused, deploys and executes it", async () => {
    const editor = clientFor(WorkflowService, "connect-json", server.baseUrl, await server.token("acme-editor"));
    await editor.createWorkflow({
      workflow: { displayName: "Review pipeline", state: Workflow_State.ACTIVE, steps: [{ name: "fetch", kind: "http" }, { name: "review", kind: "agent", dependsOn: ["fetch"] }] },
    });
    await withPage(browser, "ipas", async (page) => {
      await open(page, "acme-editor");
      await page.getByRole("link", { name: "Agents" }).click();
      await page.getByRole("heading", { level: 1, name: "Agents" }).waitFor();
      await page.getByLabel("Agent name").fill("Reviewer");
      await page.getByLabel("Model").fill("claude-sonnet-4");
      await page.getByLabel("Tools").fill("Not A Tool");
      await page.getByRole("button", { name: "Create agent" }).click();
      await expect.poll(() => page.getByLabel("Tools").getAttribute("aria-invalid")).toBe("true");
      await page.getByLabel("Tools").fill("read_file");
      await page.getByRole("button", { name: "Create agent" }).click();
      await page.getByRole("cell", { name: "Reviewer", exact: true }).waitFor();
      expect(await accessibilityProblems(page)).toEqual([]);

      await page.getByRole("link", { name: "IPAs" }).click();
      await page.getByRole("heading", { level: 1, name: "IPAs" }).waitFor();
      // Without an agent for the agent step, the deploy is refused and the page lists why.
      await page.getByLabel("IPA name").fill("Unbound");
      await page.getByLabel("Workflow").selectOption({ label: "Review pipeline" });
      await page.getByRole("button", { name: "Create IPA" }).click();
      await page.getByRole("button", { name: "Deploy Unbound" }).click();
      const refused = page.getByRole("row").filter({ hasText: "Unbound" }).getByRole("alert");
      await expect.poll(() => refused.innerText()).toMatch(/Not allowed in its current state[\s\S]*review/);
      expect(await refused.getByRole("listitem").count()).toBeGreaterThan(0);

      await page.getByLabel("IPA name").fill("Review bot");
      await page.getByLabel("Workflow").selectOption({ label: "Review pipeline" });
      await page.getByLabel("Agent for step review").selectOption({ label: "Reviewer" });
      await page.getByRole("button", { name: "Create IPA" }).click();
      await page.getByRole("button", { name: "Deploy Review bot" }).click();
      const row = page.getByRole("row").filter({ hasText: "Review bot" });
      await expect.poll(() => row.getByRole("cell").nth(1).innerText()).toBe("Deployed");
      expect(await accessibilityProblems(page)).toEqual([]);
      await page.getByRole("button", { name: "Execute Review bot" }).click();
      await page.getByRole("heading", { level: 1, name: /^Operation / }).waitFor();
      await expect.poll(() => page.getByTestId("operation-state").innerText()).toBe("Queued");
    });
  });
  it("shows two revisions of a workflow side by side: fields and steps, what changed said in words", async () => {
    const editor = clientFor(WorkflowService, "connect-json", server.baseUrl, await server.token("acme-editor"));
    const created = (
      await editor.createWorkflow({ workflow: { displayName: "Release", steps: [{ name: "compile", kind: "build" }, { name: "test", kind: "build", dependsOn: ["compile"] }] } })
    ).workflow!;
    await editor.updateWorkflow({
      workflow: { id: created.id, description: "ships it", steps: [{ name: "compile", kind: "build", config: { target: "es2022" } }, { name: "lint", kind: "check", dependsOn: ["compile"] }] },
      updateMask: { paths: ["description", "steps"] },
    });
    await editor.updateWorkflow({ workflow: { id: created.id, displayName: "Release train" }, updateMask: { paths: ["display_name"] } });
    await withPage(browser, "workflow-revisions", async (page) => {
      await open(page, "acme-viewer");
      await page.goto(`${server.baseUrl}/console/workflows/${created.id}`);
      await page.getByRole("heading", { level: 1, name: "Release train" }).waitFor();
      const revisions = page.getByRole("region", { name: "Revisions side by side" });
      // The revision before the current one against the current one, to begin with.
      const latest = revisions.getByRole("table", { name: "Revision 2 compared with revision 3" });
      await latest.waitFor();
      const cells = (table: typeof latest, label: string) =>
        table.getByRole("row").filter({ has: page.getByRole("rowheader", { name: label, exact: true }) }).getByRole("cell").allInnerTexts();
      expect(await cells(latest, "Name")).toEqual(["Release", "Release train", "Changed"]);
      expect(await cells(latest, "Step compile")).toEqual(['kind build; after nothing; config {"target":"es2022"}', 'kind build; after nothing; config {"target":"es2022"}', "Unchanged"]);
      await revisions.getByLabel("Compare revision").selectOption({ label: "Revision 1" });
      const first = revisions.getByRole("table", { name: "Revision 1 compared with revision 3" });
      await first.waitFor();
      expect(await cells(first, "Description")).toEqual(["—", "ships it", "Changed"]);
      expect(await cells(first, "State")).toEqual(["Draft", "Draft", "Unchanged"]);
      expect(await cells(first, "Step compile")).toEqual(["kind build; after nothing", 'kind build; after nothing; config {"target":"es2022"}', "Changed"]);
      expect(await cells(first, "Step lint")).toEqual(["—", "kind check; after compile", "Added"]);
      expect(await cells(first, "Step test")).toEqual(["kind build; after compile", "—", "Removed"]);
      expect(await revisions.getByRole("status").innerText()).toBe("5 differences.");
      expect(await accessibilityProblems(page)).toEqual([]);
    });
  });

  it("edits an agent on its own page: the violation at its field, a concurrent edit refused as a conflict, then saved", async () => {
    const agents = clientFor(AgentService, "connect-json", server.baseUrl, await server.token("acme-editor"));
    const agent = (await agents.createAgent({ agent: { displayName: "Summarizer", model: "claude-haiku", tools: ["read_file"] } })).agent!;
    await withPage(browser, "agent-edit", async (page) => {
      await open(page, "acme-editor");
      await page.getByRole("link", { name: "Agents" }).click();
      await page.getByRole("link", { name: "Summarizer" }).click();
      await page.getByRole("heading", { level: 1, name: "Summarizer" }).waitFor();
      expect(await page.getByLabel("Model").inputValue()).toBe("claude-haiku");
      const tools = page.getByLabel("Tools");
      await tools.fill("Not A Tool");
      await page.getByRole("button", { name: "Save changes" }).click();
      await expect.poll(() => tools.getAttribute("aria-invalid")).toBe("true");
      expect(await page.locator(`[id="${(await tools.getAttribute("aria-describedby"))!}"]`).innerText()).not.toBe("");
      expect(await page.getByLabel("Name", { exact: true }).getAttribute("aria-invalid")).toBe("false");
      expect(await accessibilityProblems(page)).toEqual([]);
      await tools.fill("read_file, search");
      await page.getByRole("button", { name: "Save changes" }).click();
      await page.getByRole("status").filter({ hasText: "Saved “Summarizer”." }).waitFor();
      expect((await agents.getAgent({ id: agent.id })).agent!.tools).toEqual(["read_file", "search"]);

      // Someone else changes the agent after this save: the next save is refused, nothing is overwritten.
      await agents.updateAgent({ agent: { id: agent.id, model: "claude-opus" }, updateMask: { paths: ["model"] } });
      await page.getByLabel("Name", { exact: true }).fill("Summarizer II");
      await page.getByRole("button", { name: "Save changes" }).click();
      await expect.poll(() => page.getByRole("alert").first().innerText()).toMatch(/Someone else changed this meanwhile/);
      expect((await agents.getAgent({ id: agent.id })).agent!.displayName).toBe("Summarizer");
      await page.getByRole("button", { name: /Load the latest version/ }).click();
      await expect.poll(() => page.getByLabel("Model").inputValue()).toBe("claude-opus");
      await page.getByLabel("Name", { exact: true }).fill("Summarizer II");
      await page.getByRole("button", { name: "Save changes" }).click();
      await page.getByRole("heading", { level: 1, name: "Summarizer II" }).waitFor();
      expect((await agents.getAgent({ id: agent.id })).agent).toMatchObject({ displayName: "Summarizer II", model: "claude-opus" });
    });
  });

  it("runs an IPA's life on its own page: deploy refused with why, bound and deployed, a stale undeploy refused, undeployed", async () => {
    const token = await server.token("acme-editor");
    const workflow = (
      await clientFor(WorkflowService, "connect-json", server.baseUrl, token).createWorkflow({
        workflow: { displayName: "Triage pipeline", state: Workflow_State.ACTIVE, steps: [{ name: "fetch", kind: "http" }, { name: "triage", kind: "agent", dependsOn: ["fetch"] }] },
      })
    ).workflow!;
    await clientFor(AgentService, "connect-json", server.baseUrl, token).createAgent({ agent: { displayName: "Triager", model: "claude-haiku" } });
    const ipas = clientFor(IpaService, "connect-json", server.baseUrl, token);
    const ipa = (await ipas.createIpa({ ipa: { displayName: "Triage bot", workflowId: workflow.id } })).ipa!;
    await withPage(browser, "ipa-page", async (page) => {
      await open(page, "acme-editor");
      await page.getByRole("link", { name: "IPAs" }).click();
      await page.getByRole("link", { name: "Triage bot" }).click();
      await page.getByRole("heading", { level: 1, name: "Triage bot" }).waitFor();
      const state = page.getByTestId("ipa-state");
      expect(await state.innerText()).toBe("Draft");
      // Unbound, the deploy is refused and the page lists why.
      await page.getByRole("button", { name: "Deploy", exact: true }).click();
      const refused = page.getByRole("alert");
      await expect.poll(() => refused.innerText()).toMatch(/Not allowed in its current state[\s\S]*triage/);
      expect(await refused.getByRole("listitem").count()).toBeGreaterThan(0);
      const binding = page.getByLabel("Agent for step triage");
      await binding.selectOption({ label: "Triager" });
      await page.getByRole("button", { name: "Save changes" }).click();
      await page.getByRole("status").filter({ hasText: "Saved “Triage bot”." }).waitFor();
      await page.getByRole("button", { name: "Deploy", exact: true }).click();
      await expect.poll(() => state.innerText()).toBe("Deployed");
      await page.getByRole("status").filter({ hasText: "Deployed, pinned to workflow revision 1." }).waitFor();
      // Deployed: its workflow and agents are not offered for change.
      expect(await binding.isDisabled()).toBe(true);
      expect(await accessibilityProblems(page)).toEqual([]);

      // Renamed elsewhere meanwhile: the undeploy carries the old etag and is refused.
      await ipas.updateIpa({ ipa: { id: ipa.id, displayName: "Triage bot v2" }, updateMask: { paths: ["display_name"] } });
      await page.getByRole("button", { name: "Undeploy" }).click();
      await expect.poll(() => page.getByRole("alert").first().innerText()).toMatch(/Someone else changed this meanwhile/);
      expect((await ipas.getIpa({ id: ipa.id })).ipa!.state).toBe(Ipa_State.DEPLOYED);
      await page.getByRole("button", { name: /Load the latest version/ }).click();
      await page.getByRole("heading", { level: 1, name: "Triage bot v2" }).waitFor();
      await page.getByRole("button", { name: "Undeploy" }).click();
      await expect.poll(() => page.getByTestId("ipa-state").innerText()).toBe("Retired");
      await page.getByRole("status").filter({ hasText: "Undeployed: retired until deployed again." }).waitFor();
      expect(await page.getByLabel("Agent for step triage").isDisabled()).toBe(false);
      expect(await accessibilityProblems(page)).toEqual([]);
    });
  });
});
