import type { Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import { credential } from "./session.js";

/** Adds the signed-in credential to every call; API keys and tokens both travel as a bearer credential. */
const authorization: Interceptor = (next) => (req) => {
  const value = credential();
  if (value !== undefined) req.header.set("Authorization", `Bearer ${value}`);
  return next(req);
};

/**
 * The one transport of the console: Connect over fetch to the gateway that
 * served the page (same origin, so no CORS). Every RPC goes through the
 * generated service descriptors in gen/ via connect-query.
 */
export const transport = createConnectTransport({
  baseUrl: location.origin,
  interceptors: [authorization],
});
