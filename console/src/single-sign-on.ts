import type { OidcSignIn } from "../../gen/anvil/identity/v1/identity_pb.js";
import { basePath } from "./router.js";

/**
 * Single sign-on with the gateway's OpenID provider: the authorization code
 * flow with PKCE, the console being a public client (no secret). The protocol
 * work — discovery, PKCE, state and nonce, the response's checks, the code
 * exchange — is oauth4webapi's; this file only decides what to keep and where.
 * oauth4webapi is imported on demand, so the first load of the console does
 * not carry it.
 *
 * Nothing secret ever sits in a URL the console makes: the code the provider
 * sends back is removed from the address bar before it is exchanged, and the
 * ID token obtained lives in sessionStorage (session.ts), sent as a header.
 */

/** Where the provider sends the browser back; the provider must list it among the console client's redirect URIs. */
export const callbackPath = "/signed-in";
const redirectUri = () => `${location.origin}${basePath}${callbackPath}`;

/** What the tab remembers between leaving for the provider and coming back: only this tab can finish the sign-in. */
interface Pending {
  readonly issuer: string;
  readonly clientId: string;
  readonly verifier: string;
  readonly state: string;
  readonly nonce: string;
  /** The console page to land on once signed in. */
  readonly returnTo: string;
}
const pendingKey = "anvil.console.sso";

// A provider on this machine (development, tests) speaks plain HTTP; anywhere else oauth4webapi insists on HTTPS.
const loopback = new Set(["localhost", "127.0.0.1", "[::1]"]);
const requestOptions = async (issuer: URL) => {
  const oauth = await import("oauth4webapi");
  return loopback.has(issuer.hostname) ? { [oauth.allowInsecureRequests]: true } : {};
};

async function authorizationServer(issuer: URL) {
  const oauth = await import("oauth4webapi");
  const response = await oauth.discoveryRequest(issuer, await requestOptions(issuer));
  return oauth.processDiscoveryResponse(issuer, response);
}

/** Leaves for the provider's sign-in page; comes back to {@link callbackPath}. */
export async function startSingleSignOn(options: OidcSignIn, returnTo: string): Promise<void> {
  const oauth = await import("oauth4webapi");
  const issuer = new URL(options.issuer);
  const as = await authorizationServer(issuer);
  if (as.authorization_endpoint === undefined) throw new Error(`${options.issuer} names no authorization endpoint`);
  const pending: Pending = {
    issuer: options.issuer,
    clientId: options.clientId,
    verifier: oauth.generateRandomCodeVerifier(),
    state: oauth.generateRandomState(),
    nonce: oauth.generateRandomNonce(),
    returnTo,
  };
  sessionStorage.setItem(pendingKey, JSON.stringify(pending));
  const url = new URL(as.authorization_endpoint);
  url.search = new URLSearchParams({
    client_id: options.clientId,
    redirect_uri: redirectUri(),
    response_type: "code",
    scope: options.scopes.join(" "),
    code_challenge: await oauth.calculatePKCECodeChallenge(pending.verifier),
    code_challenge_method: "S256",
    state: pending.state,
    nonce: pending.nonce,
  }).toString();
  location.assign(url);
}

/** The outcome of coming back from the provider: the ID token to sign in with, and where to go. */
export interface SignedIn {
  readonly token: string;
  readonly returnTo: string;
}

let finishing: Promise<SignedIn> | undefined;

/**
 * Finishes a sign-in on {@link callbackPath}: checks the provider's answer
 * against what this tab sent (state), exchanges the code with the PKCE
 * verifier, checks the ID token's issuer, audience and nonce, and returns it.
 * The gateway accepts that token because its audience is the console's client
 * id (ANVIL_OIDC_CONSOLE_CLIENT_ID) and verifies its signature on every call.
 * Runs once per page load, however often React asks.
 */
export function finishSingleSignOn(): Promise<SignedIn> {
  finishing ??= finish();
  return finishing;
}

async function finish(): Promise<SignedIn> {
  // The code and state leave the address bar (and so the history) before anything else happens.
  const answer = new URL(location.href);
  history.replaceState(null, "", basePath + callbackPath);
  const raw = sessionStorage.getItem(pendingKey);
  sessionStorage.removeItem(pendingKey);
  if (raw === null) throw new Error("This tab did not start a sign-in, or already finished it: start again.");
  const pending = JSON.parse(raw) as Pending;
  const oauth = await import("oauth4webapi");
  const issuer = new URL(pending.issuer);
  const as = await authorizationServer(issuer);
  const client = { client_id: pending.clientId };
  const params = oauth.validateAuthResponse(as, client, answer, pending.state);
  const response = await oauth.authorizationCodeGrantRequest(as, client, oauth.None(), params, redirectUri(), pending.verifier, await requestOptions(issuer));
  const result = await oauth.processAuthorizationCodeResponse(as, client, response, { expectedNonce: pending.nonce, requireIdToken: true });
  return { token: result.id_token!, returnTo: pending.returnTo };
}
