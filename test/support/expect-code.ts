import { Code, ConnectError } from "@connectrpc/connect";
import { expect } from "vitest";

/**
 * Awaits a call that must fail with exactly `code`, and returns the error
 * for further checks (its message, its details). Comparing code names makes
 * a failure read "expected NOT_FOUND, got ABORTED" rather than two numbers.
 */
export async function expectCode(promise: Promise<unknown>, code: Code): Promise<ConnectError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, `expected ${Code[code]}`).toBeInstanceOf(ConnectError);
  expect(Code[(err as ConnectError).code]).toBe(Code[code]);
  return err as ConnectError;
}
