import { decodeJwt } from "jose";
import type { Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Caller_CredentialKind, IdentityService, SignInService } from "../gen/anvil/identity/v1/identity_pb.js";
import { loadConfig } from "../src/config.js";
import { launchChromium, withPage } from "./support/browser.js";
import { clientFor } from "./support/clients.js";
import { accessibilityProblems, ensureConsoleBuilt } from "./support/console-page.js";
import { startIdentityProvider, type TestIdentityProvider } from "./support/identity-provider.js";
import { startServer, type TestServer } from "./support/server.js";

/**
 * The console's single sign-on against a real OpenID provider (`oidc-provider`
 * on its own port, with its own login and consent pages): authorization code
 * with PKCE from Chromium, the ID token accepted by the gateway because its
 * audience is the console's client id, and nothing secret left in a URL.
 */

const kind = process.env.TEST_DATABASE_URL ? "postgres" : "pglite";
const audience = "https://anvil.test";
const consoleClient = "anvil-console";
const credentialKey = "anvil.console.credential";

describe(`the console's single sign-on, in Chromium, on ${kind}`, () => {
  let idp: TestIdentityProvider;
  let server: TestServer;
  let browser: Browser;
  beforeAll(async () => {
    ensureConsoleBuilt();
    idp = await startIdentityProvider(audience, []);
    [server, browser] = await Promise.all([
      startServer(kind, {
        env: {
          ANVIL_OIDC_ISSUER: idp.issuer,
          ANVIL_OIDC_AUDIENCE: audience,
          ANVIL_OIDC_CONSOLE_CLIENT_ID: consoleClient,
          ANVIL_OIDC_CONSOLE_SCOPES: "openid profile anvil",
        },
      }),
      launchChromium(),
    ]);
    // `superuser` is no Anvil role: the gateway drops it.
    idp.addBrowserClient({
      id: consoleClient,
      redirectUri: `${server.baseUrl}/console/signed-in`,
      people: { ada: { name: "Ada Lovelace", tenant: "acme", roles: ["editor", "superuser"] } },
    });
  });
  afterAll(async () => {
    await browser?.close();
    await server?.close();
    await idp?.close();
  });

  it("tells anyone, without a credential, how the console signs in; a console client needs an issuer", async () => {
    const { oidc } = await clientFor(SignInService, "connect-json", server.baseUrl).getSignInOptions({});
    expect(oidc).toMatchObject({ issuer: idp.issuer, clientId: consoleClient, scopes: ["openid", "profile", "anvil"] });
    const rest = await fetch(`${server.baseUrl}/v1/sign-in-options`);
    expect(rest.status).toBe(200);
    expect(await rest.json()).toEqual({ oidc: { issuer: idp.issuer, clientId: consoleClient, scopes: ["openid", "profile", "anvil"] } });
    // The page may reach the provider (discovery, code exchange), and nothing else off its origin.
    const csp = (await fetch(`${server.baseUrl}/console`)).headers.get("content-security-policy");
    expect(csp).toContain(`connect-src 'self' ${idp.issuer}`);
    expect(() => loadConfig({ ANVIL_OIDC_CONSOLE_CLIENT_ID: consoleClient })).toThrow(/ANVIL_OIDC_CONSOLE_CLIENT_ID needs ANVIL_OIDC_ISSUER/);
  });

  it("signs in through the provider's login and consent pages, back on the page it left, with the caller's name, tenant and roles", async () => {
    await withPage(browser, "sso-sign-in", async (page) => {
      const urls: string[] = [];
      page.on("request", (r) => urls.push(r.url()));
      await page.goto(`${server.baseUrl}/console/workflows`);
      await page.getByRole("heading", { name: "Sign in to Anvil" }).waitFor();
      expect(await accessibilityProblems(page)).toEqual([]);
      await page.getByRole("button", { name: "Sign in with single sign-on" }).click();

      // The provider's own pages, on its own origin.
      await page.waitForURL((u) => u.origin === idp.issuer);
      await page.getByPlaceholder("Enter any login").fill("ada");
      await page.getByPlaceholder("and password").fill("any password");
      await page.getByRole("button", { name: "Sign-in" }).click();
      await page.getByRole("button", { name: "Continue" }).click();

      // Back where the sign-in started, signed in as the person the provider named.
      await page.getByRole("heading", { level: 1, name: "Workflows" }).waitFor();
      const who = page.getByRole("region", { name: "Signed in" });
      await expect.poll(() => who.innerText()).toMatch(/Signed in as ada \(single sign-on\)/);
      expect(await who.innerText()).toMatch(/Tenant\s+acme/);
      expect(await who.innerText()).toMatch(/Roles\s+editor(?!,)/);
      // An editor's actions are offered.
      await page.getByRole("link", { name: "New workflow" }).waitFor();

      // The code and state are gone from the address bar; the ID token is in sessionStorage, never in a URL.
      expect(page.url()).toBe(`${server.baseUrl}/console/workflows`);
      const token = (await page.evaluate((key) => sessionStorage.getItem(key), credentialKey))!;
      const claims = decodeJwt(token);
      expect(claims).toMatchObject({ iss: idp.issuer, aud: consoleClient, sub: "ada", tenant: "acme" });
      expect(urls.filter((u) => u.includes(token))).toEqual([]);
      // The redirect carried the code once, to the callback page only.
      expect(urls.filter((u) => /[?&]code=/.test(u)).every((u) => u.startsWith(`${server.baseUrl}/console/signed-in?`))).toBe(true);
      expect(await accessibilityProblems(page)).toEqual([]);

      // The gateway takes the same token from any client, as the console's audience.
      const caller = (await clientFor(IdentityService, "connect-json", server.baseUrl, token).getCaller({})).caller!;
      expect(caller).toMatchObject({ subject: "ada", tenant: "acme", roles: ["editor"], credentialKind: Caller_CredentialKind.OIDC });

      // Kept for the tab: a reload stays signed in; signing out forgets the token.
      await page.reload();
      await page.getByRole("heading", { level: 1, name: "Workflows" }).waitFor();
      await page.getByRole("button", { name: "Sign out" }).click();
      await page.getByRole("heading", { name: "Sign in to Anvil" }).waitFor();
      expect(await page.evaluate((key) => sessionStorage.getItem(key), credentialKey)).toBeNull();
    });
  });

  it("refuses a return this tab did not start (a forged or replayed callback), and cleans the address bar", async () => {
    await withPage(browser, "sso-forged-callback", async (page) => {
      await page.goto(`${server.baseUrl}/console/signed-in?code=stolen&state=guessed`);
      await page.getByRole("heading", { level: 1, name: "Sign-in did not finish" }).waitFor();
      expect(await page.getByRole("alert").innerText()).toMatch(/did not start a sign-in/);
      expect(page.url()).toBe(`${server.baseUrl}/console/signed-in`);
      expect(await page.evaluate((key) => sessionStorage.getItem(key), credentialKey)).toBeNull();
      expect(await accessibilityProblems(page)).toEqual([]);
      await page.getByRole("button", { name: "Back to sign-in" }).click();
      await page.getByRole("button", { name: "Sign in with single sign-on" }).waitFor();
    });
  });
});
