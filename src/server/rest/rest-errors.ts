import { Code, type ConnectError } from "@connectrpc/connect";
import { codeToHttpStatus, errorToJson } from "@connectrpc/connect/protocol-connect";
import type { NodeRequest, NodeResponse } from "../connect-handler.js";
import { sendBody } from "../http-compression.js";
import { isBodyTooLarge } from "./request-body.js";

/**
 * The HTTP status of an error refused by the REST layer itself: the status
 * of its Connect code, except where HTTP has a more precise one a REST client
 * expects — 413 for a body over the size limit, 415 for a body it cannot decode.
 */
export function errorStatus(error: ConnectError): number {
  if (isBodyTooLarge(error)) return 413;
  if (error.code === Code.Unimplemented) return 415;
  return codeToHttpStatus(error.code);
}

/**
 * Sends an error as `{code, message, details}` — the JSON Connect uses for
 * unary errors, so REST and Connect clients parse the same shape.
 * Resolves to the body bytes sent (0 when the client went away).
 */
export function sendRestError(
  req: NodeRequest,
  res: NodeResponse,
  error: ConnectError,
  compressMinBytes: number,
  status = codeToHttpStatus(error.code),
): Promise<number> {
  const json = { details: [], ...errorToJson(error, undefined) };
  return sendBody(req, res, status, { "content-type": "application/json" }, new TextEncoder().encode(JSON.stringify(json)), compressMinBytes).catch(() => {
    // The client went away; nothing is left to tell it.
    return 0;
  });
}
