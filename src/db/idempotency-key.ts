import { requestHash } from "../shared/request-hash.js";
import type { IdempotencyKey } from "./idempotency.repository.js";

/**
 * The idempotency key of a create, or undefined when the client sent no
 * `request_id` (the create then simply runs). Hashing the input lets a
 * reused id with a different request be told apart from a retry.
 *
 * @example
 *   tx.idempotency.run(idempotencyKey("agents.create", input, requestId), codec, () => tx.agents.create(input))
 */
export function idempotencyKey(operation: string, input: unknown, requestId: string | undefined): IdempotencyKey | undefined {
  return requestId ? { requestId, operation, requestHash: requestHash(input) } : undefined;
}
