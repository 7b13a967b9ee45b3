import { Code, ConnectError, type ContextKey, createClient, createRouterTransport, type Interceptor } from "@connectrpc/connect";
import { UserService } from "../../gen/anvil/users/v1/users_pb.js";

/**
 * A UserService client over connect's in-memory transport whose GetUser
 * answers a user, or fails NOT_FOUND for id "missing"; `interceptors` run
 * around it as the gateway's do (the first outermost).
 */
export function usersWith(interceptors: Interceptor[]) {
  const transport = createRouterTransport(
    ({ service }) => {
      service(UserService, {
        getUser: (req) => {
          if (req.id === "missing") throw new ConnectError("user missing not found", Code.NotFound);
          return { user: { id: req.id } };
        },
      });
    },
    { router: { interceptors } },
  );
  return createClient(UserService, transport);
}

/** The ConnectError a call failed with (the test fails if it succeeded). */
export async function refusal(call: Promise<unknown>): Promise<ConnectError> {
  const outcome = await call.then(
    () => undefined,
    (e: unknown) => ConnectError.from(e),
  );
  if (outcome === undefined) throw new Error("the call succeeded");
  return outcome;
}

/** Sets a context value before the interceptors under test run, as the transport or the auth interceptor would. */
export const setting =
  <T>(key: ContextKey<T>, value: T): Interceptor =>
  (next) =>
  (req) => {
    req.contextValues.set(key, value);
    return next(req);
  };
