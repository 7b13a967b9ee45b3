import { randomUUID } from "node:crypto";
import { create, type DescMessage, fromBinary, toBinary } from "@bufbuild/protobuf";
import {
  CreateUserRequestSchema,
  CreateUserResponseSchema,
  GetUserRequestSchema,
  GetUserResponseSchema,
  ListUsersRequestSchema,
  ListUsersResponseSchema,
} from "../../gen/anvil/users/v1/users_pb.js";
import { RunWorkflowRequestSchema, RunWorkflowResponseSchema } from "../../gen/anvil/workflows/v1/workflows_pb.js";
import type { BenchContext } from "./context.js";
import { envelope, frames, parseTrailerFrame, trailerFlag } from "./framing.js";
import { HealthCheckRequestSchema, HealthCheckResponseSchema, serving } from "./health-service.js";

/** A response as the checks see it: HTTP status, headers, trailers and the whole body. */
export interface Reply {
  readonly status: number;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  readonly trailers: Readonly<Record<string, string | string[] | undefined>>;
  readonly body: Buffer;
}

/** The calls the workloads are made of. */
export type CallName =
  | "healthz-h1"
  | "healthz-h2"
  | "health-grpc"
  | "get-grpc"
  | "get-grpc-apikey"
  | "get-grpc-oidc"
  | "get-connect-proto"
  | "get-grpc-web"
  | "get-connect-json"
  | "get-rest"
  | "create-grpc"
  | "create-connect-json"
  | "list-grpc"
  | "list-connect-json"
  | "run-workflow-grpc";

/**
 * One kind of request on the wire and how to tell a right answer from a
 * wrong one. Every load generator sends calls built here, and every check
 * uses `verify`, so a server that answers errors quickly cannot win.
 */
export interface Call {
  readonly name: CallName;
  /** Wire protocol, as shown in the report. */
  readonly protocol: string;
  readonly http: "h1" | "h2";
  readonly method: "GET" | "POST";
  readonly path: string;
  readonly headers: Readonly<Record<string, string>>;
  /** True when every request must carry a different body (writes with a unique request_id). */
  readonly unique: boolean;
  /** A request body (fresh for unique calls), or undefined for GET. */
  body(): Buffer | undefined;
  /** Why the response is wrong, or undefined when it is right. */
  verify(reply: Reply): string | undefined;
  /** The same check on what autocannon hands back: status and the body decoded as UTF-8, no trailers. */
  verifyText(status: number, text: string): string | undefined;
}

const userService = "/anvil.users.v1.UserService";

/** Builds the call named `name` for the data in `ctx`. */
export function buildCall(name: CallName, ctx: BenchContext): Call {
  const auth = { authorization: `Bearer ${ctx.token}` };
  const grpc = { "content-type": "application/grpc", te: "trailers", ...auth };
  const getRequest = toBinary(GetUserRequestSchema, create(GetUserRequestSchema, { id: ctx.userId }));
  const listRequest = toBinary(
    ListUsersRequestSchema,
    create(ListUsersRequestSchema, { pageSize: ctx.pageSize, pageToken: ctx.pageToken }),
  );
  const checkUser = (user: { id?: string; email?: string } | undefined) =>
    user?.id === ctx.userId && user.email === ctx.userEmail ? undefined : `expected user ${ctx.userId}, got ${JSON.stringify(user)?.slice(0, 120)}`;
  const checkCreated = (user: { id?: string; email?: string } | undefined) =>
    user && /^[0-9a-f-]{36}$/.test(user.id ?? "") && user.email?.endsWith("@bench.example") ? undefined : `expected a created user, got ${JSON.stringify(user)?.slice(0, 120)}`;
  const checkPage = (page: { users?: Array<{ id?: string }>; nextPageToken?: string } | undefined) =>
    page?.users?.length === ctx.pageSize && page.users[0]?.id === ctx.pageFirstId && page.nextPageToken
      ? undefined
      : `expected ${ctx.pageSize} users from ${ctx.pageFirstId}, got ${page?.users?.length ?? 0} from ${page?.users?.[0]?.id}`;
  const fixed = (bytes: Uint8Array | string | undefined) => {
    const buffer = bytes === undefined ? undefined : Buffer.from(bytes as Uint8Array);
    return () => buffer;
  };

  switch (name) {
    case "healthz-h1":
    case "healthz-h2":
      return {
        name,
        protocol: name === "healthz-h1" ? "GET /healthz, HTTP/1.1" : "GET /healthz, h2",
        http: name === "healthz-h1" ? "h1" : "h2",
        method: "GET",
        path: "/healthz",
        headers: {},
        unique: false,
        body: fixed(undefined),
        verify: (r) => json(r.status, r.body.toString("utf8"), (b) => (b.status === "ok" ? undefined : "status is not ok")),
        verifyText: (status, text) => json(status, text, (b) => (b.status === "ok" ? undefined : "status is not ok")),
      };
    case "health-grpc": {
      return grpcCall(name, "/grpc.health.v1.Health/Check", grpc, fixed(envelope(toBinary(HealthCheckRequestSchema, create(HealthCheckRequestSchema)))), HealthCheckResponseSchema, (m) =>
        (m as { status?: number }).status === serving ? undefined : "not SERVING",
      );
    }
    case "get-grpc":
      return grpcCall(name, `${userService}/GetUser`, grpc, fixed(envelope(getRequest)), GetUserResponseSchema, (m) => checkUser(m.user));
    // The same point read with the other credential kinds: the service-account token above, an API key, an OIDC token.
    case "get-grpc-apikey":
    case "get-grpc-oidc": {
      const credential = name === "get-grpc-apikey" ? ctx.apiKey : ctx.oidcToken;
      const headers = { ...grpc, authorization: `Bearer ${credential}` };
      return grpcCall(name, `${userService}/GetUser`, headers, fixed(envelope(getRequest)), GetUserResponseSchema, (m) => checkUser(m.user));
    }
    case "list-grpc":
      return grpcCall(name, `${userService}/ListUsers`, grpc, fixed(envelope(listRequest)), ListUsersResponseSchema, (m) => checkPage(m));
    case "run-workflow-grpc":
      // Starts a run of the bench workflow: one operation and one queued task, enqueued in the caller's transaction.
      return {
        ...grpcCall(
          name,
          "/anvil.workflows.v1.WorkflowService/RunWorkflow",
          grpc,
          () => envelope(toBinary(RunWorkflowRequestSchema, create(RunWorkflowRequestSchema, { id: ctx.workflowId, requestId: randomUUID() }))),
          RunWorkflowResponseSchema,
          (m) => (m.operation?.id && m.operation.resource === `workflows/${ctx.workflowId}` ? undefined : `expected an operation on the bench workflow, got ${JSON.stringify(m.operation)?.slice(0, 160)}`),
        ),
        unique: true,
      };
    case "create-grpc":
      return {
        ...grpcCall(name, `${userService}/CreateUser`, grpc, () => envelope(toBinary(CreateUserRequestSchema, newUserRequest())), CreateUserResponseSchema, (m) => checkCreated(m.user)),
        unique: true,
      };
    case "get-connect-proto":
      return {
        name,
        protocol: "Connect binary, h2",
        http: "h2",
        method: "POST",
        path: `${userService}/GetUser`,
        headers: { "content-type": "application/proto", ...auth },
        unique: false,
        body: fixed(getRequest),
        verify: (r) => {
          if (r.status !== 200) return `HTTP ${r.status}: ${r.body.toString("utf8").slice(0, 200)}`;
          return decode(GetUserResponseSchema, r.body, (m) => checkUser(m.user));
        },
        verifyText: () => "binary responses are checked with verify()",
      };
    case "get-grpc-web":
      return {
        name,
        protocol: "gRPC-Web, HTTP/1.1",
        http: "h1",
        method: "POST",
        path: `${userService}/GetUser`,
        headers: { "content-type": "application/grpc-web+proto", "x-grpc-web": "1", ...auth },
        unique: false,
        body: fixed(envelope(getRequest)),
        verify: (r) => {
          if (r.status !== 200) return `HTTP ${r.status}`;
          try {
            const parts = frames(r.body);
            const trailer = parts.find((f) => f.flags & trailerFlag);
            const status = trailer ? parseTrailerFrame(trailer.data)["grpc-status"] : r.headers["grpc-status"];
            if (status !== "0") return `grpc-status ${String(status)} ${String(trailer && parseTrailerFrame(trailer.data)["grpc-message"])}`;
            const message = parts.find((f) => !(f.flags & trailerFlag));
            if (!message) return "no message frame";
            return decode(GetUserResponseSchema, message.data, (m) => checkUser(m.user));
          } catch (err) {
            return String(err);
          }
        },
        // The protobuf body holds the id and e-mail as plain bytes, and the trailer frame is text.
        verifyText: (status, text) =>
          status !== 200
            ? `HTTP ${status}`
            : !/grpc-status: ?0\r\n/.test(text)
              ? `no grpc-status 0 in ${JSON.stringify(text.slice(-80))}`
              : text.includes(ctx.userId) && text.includes(ctx.userEmail)
                ? undefined
                : "user missing from the answer",
      };
    case "get-connect-json":
    case "list-connect-json":
    case "create-connect-json": {
      const method = name === "get-connect-json" ? "GetUser" : name === "list-connect-json" ? "ListUsers" : "CreateUser";
      const check =
        name === "get-connect-json"
          ? (b: any) => checkUser(b.user)
          : name === "list-connect-json"
            ? (b: any) => checkPage(b)
            : (b: any) => checkCreated(b.user);
      const body =
        name === "get-connect-json"
          ? fixed(JSON.stringify({ id: ctx.userId }))
          : name === "list-connect-json"
            ? fixed(JSON.stringify({ pageSize: ctx.pageSize, pageToken: ctx.pageToken }))
            : () => Buffer.from(JSON.stringify(newUserJson()));
      return {
        name,
        protocol: "Connect JSON, HTTP/1.1",
        http: "h1",
        method: "POST",
        path: `${userService}/${method}`,
        headers: { "content-type": "application/json", ...auth },
        unique: name === "create-connect-json",
        body,
        verify: (r) => json(r.status, r.body.toString("utf8"), check),
        verifyText: (status, text) => json(status, text, check),
      };
    }
    case "get-rest":
      return {
        name,
        protocol: "REST JSON, HTTP/1.1",
        http: "h1",
        method: "GET",
        path: `/v1/users/${ctx.userId}`,
        headers: auth,
        unique: false,
        body: fixed(undefined),
        verify: (r) => json(r.status, r.body.toString("utf8"), (b) => checkUser(b)),
        verifyText: (status, text) => json(status, text, (b) => checkUser(b)),
      };
  }
}

function grpcCall<M extends DescMessage>(
  name: CallName,
  path: string,
  headers: Record<string, string>,
  body: () => Buffer | undefined,
  schema: M,
  check: (m: any) => string | undefined,
): Call {
  return {
    name,
    protocol: "gRPC, h2",
    http: "h2",
    method: "POST",
    path,
    headers,
    unique: false,
    body,
    verify: (r) => {
      if (r.status !== 200) return `HTTP ${r.status}`;
      // A trailers-only error answer carries grpc-status in the headers.
      const status = r.trailers["grpc-status"] ?? r.headers["grpc-status"];
      if (status !== "0") return `grpc-status ${String(status)}: ${String(r.trailers["grpc-message"] ?? r.headers["grpc-message"])}`;
      try {
        const parts = frames(r.body);
        if (parts.length !== 1) return `${parts.length} messages in a unary answer`;
        return decode(schema, parts[0]!.data, check);
      } catch (err) {
        return String(err);
      }
    },
    verifyText: () => "gRPC needs trailers; checked with verify()",
  };
}

function decode<M extends DescMessage>(schema: M, bytes: Uint8Array, check: (m: any) => string | undefined): string | undefined {
  try {
    return check(fromBinary(schema, bytes));
  } catch (err) {
    return `undecodable ${schema.typeName}: ${String(err)}`;
  }
}

function json(status: number, text: string, check: (body: any) => string | undefined): string | undefined {
  if (status !== 200) return `HTTP ${status}: ${text.slice(0, 200)}`;
  try {
    return check(JSON.parse(text));
  } catch {
    return `not JSON: ${text.slice(0, 120)}`;
  }
}

/** A user no other request creates: unique e-mail, and a unique request_id so each call is a real create. */
function newUserJson() {
  const id = randomUUID();
  return {
    user: { email: `bench-${id}@bench.example`, displayName: "Bench User", roles: ["viewer"], state: "STATE_ACTIVE" },
    requestId: randomUUID(),
  };
}

function newUserRequest() {
  const j = newUserJson();
  return create(CreateUserRequestSchema, { user: { ...j.user, state: 1 }, requestId: j.requestId });
}
