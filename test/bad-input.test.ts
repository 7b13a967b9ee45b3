import { fromBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, type Client } from "@connectrpc/connect";
import { randomUUID } from "node:crypto";
import http from "node:http";
import http2 from "node:http2";
import { gzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type User, UserService } from "../gen/anvil/users/v1/users_pb.js";
import { BadRequestSchema } from "../gen/google/rpc/error_details_pb.js";
import { clientFor, protocols, type Protocol } from "./support/clients.js";
import { databaseKinds } from "./support/databases.js";
import { startServer, type TestServer } from "./support/server.js";

/**
 * Bad input of every kind gets a clear error and changes nothing, against a
 * real listening server on every database: malformed JSON and protobuf over
 * each protocol (INVALID_ARGUMENT, never INTERNAL), wrong content types,
 * oversized bodies (RESOURCE_EXHAUSTED, refused before they are buffered
 * whole), invalid field values (every violated field named in
 * google.rpc.BadRequest), NUL and unpaired surrogates, forged page tokens.
 * After each bad write the users are listed to show nothing changed, and no
 * answer ever carries a stack trace, SQL or driver text.
 */

const service = "/anvil.users.v1.UserService";
const MiB = 1024 * 1024;

// ---------- raw wire helpers: what a script or a broken client sends ----------

/** One gRPC / gRPC-Web / Connect-streaming envelope; `length` may lie about the size. */
function envelope(data: Uint8Array, flags = 0, length = data.byteLength): Buffer {
  const out = Buffer.alloc(5 + data.byteLength);
  out[0] = flags;
  out.writeUInt32BE(length, 1);
  out.set(data, 5);
  return out;
}

interface RawAnswer {
  readonly status: number;
  readonly headers: Record<string, string>;
  readonly body: Buffer;
  /** gRPC trailers (HTTP/2 trailers, or the gRPC-Web trailer envelope). */
  readonly trailers: Record<string, string>;
  /** How many body bytes the client had written when the answer ended. */
  readonly sent: number;
}

function flatHeaders(h: http.IncomingHttpHeaders | http2.IncomingHttpHeaders): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(h)) if (v !== undefined) out[k] = Array.isArray(v) ? v.join(", ") : String(v);
  return out;
}

/** The gRPC status of an answer: from the trailers, or the headers of a trailers-only answer. */
function grpcStatus(a: RawAnswer): { code: number; message: string } {
  const status = a.trailers["grpc-status"] ?? a.headers["grpc-status"];
  const message = a.trailers["grpc-message"] ?? a.headers["grpc-message"] ?? "";
  return { code: Number(status), message: decodeURIComponent(message) };
}

/**
 * An HTTP/1.1 POST written chunk by chunk by `feed`, which gets the request
 * and a promise of the answer, so it can stop writing once the server has
 * answered. Resolves with the whole answer.
 */
function h1Post(
  port: number,
  path: string,
  headers: Record<string, string>,
  feed: (req: http.ClientRequest, answered: Promise<unknown>) => Promise<void> | void,
): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    let sent = 0;
    const req = http.request({ host: "127.0.0.1", port, path, method: "POST", headers, agent: false });
    const write = req.write.bind(req) as (chunk: Buffer, cb?: () => void) => boolean;
    req.write = ((chunk: Buffer, ...rest: []) => {
      sent += chunk.byteLength;
      return write(chunk, ...rest);
    }) as typeof req.write;
    const timer = setTimeout(() => {
      req.destroy();
      reject(new Error(`no answer after ${sent} bytes`));
    }, 20_000);
    const answered = new Promise<void>((done) => {
      req.on("response", (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
          clearTimeout(timer);
          const body = Buffer.concat(chunks);
          const answer = { status: res.statusCode ?? 0, headers: flatHeaders(res.headers), body, trailers: grpcWebTrailers(body), sent };
          req.destroy();
          done();
          resolve(answer);
        });
      });
    });
    req.on("error", (err) => {
      // The server may close the connection after answering mid-upload; the answer still counts.
      if (!(err as NodeJS.ErrnoException).code?.startsWith("ECONNRESET") && (err as NodeJS.ErrnoException).code !== "EPIPE") reject(err);
    });
    Promise.resolve(feed(req, answered)).catch(reject);
  });
}

/** A complete HTTP/1.1 POST of `body`. */
function h1PostAll(port: number, path: string, headers: Record<string, string>, body: Buffer | string): Promise<RawAnswer> {
  return h1Post(port, path, headers, (req) => {
    req.write(Buffer.from(body));
    req.end();
  });
}

/** A Connect GET, as a browser or cache sends an idempotent call. */
async function h1Get(port: number, pathAndQuery: string, headers: Record<string, string>): Promise<RawAnswer> {
  const res = await fetch(`http://127.0.0.1:${port}${pathAndQuery}`, { headers });
  const body = Buffer.from(await res.arrayBuffer());
  return { status: res.status, headers: Object.fromEntries(res.headers), body, trailers: {}, sent: 0 };
}

/** The trailer envelope (flag 0x80) of a gRPC-Web answer, parsed. */
function grpcWebTrailers(body: Buffer): Record<string, string> {
  const out: Record<string, string> = {};
  for (let at = 0; at + 5 <= body.byteLength; ) {
    const flags = body[at]!;
    const length = body.readUInt32BE(at + 1);
    const data = body.subarray(at + 5, at + 5 + length);
    if (flags & 0x80) {
      for (const line of data.toString("utf8").split("\r\n")) {
        const colon = line.indexOf(":");
        if (colon > 0) out[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
      }
    }
    at += 5 + length;
  }
  return out;
}

/**
 * A gRPC call over cleartext HTTP/2 with prior knowledge, as grpcurl makes
 * it. `end: false` leaves the request stream open, to show the server
 * answers without waiting for the rest.
 */
function h2Grpc(port: number, path: string, headers: Record<string, string>, body: Buffer, end = true): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(`http://127.0.0.1:${port}`);
    session.on("error", reject);
    const stream = session.request({ ":method": "POST", ":path": path, "content-type": "application/grpc", te: "trailers", ...headers });
    let responseHeaders: Record<string, string> = {};
    let trailers: Record<string, string> = {};
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      session.destroy();
      reject(new Error("no gRPC answer"));
    }, 20_000);
    stream.on("response", (h) => (responseHeaders = flatHeaders(h)));
    stream.on("trailers", (t) => (trailers = flatHeaders(t)));
    stream.on("data", (c: Buffer) => chunks.push(c));
    stream.on("error", () => {}); // a reset after the answer is expected when we never finish the request
    stream.on("end", () => {
      clearTimeout(timer);
      const status = Number(responseHeaders[":status"] ?? 0);
      resolve({ status, headers: responseHeaders, body: Buffer.concat(chunks), trailers, sent: body.byteLength });
      session.destroy();
    });
    stream.write(body);
    if (end) stream.end();
  });
}

// ---------- what a leak looks like ----------

// Shapes of a stack frame, SQL, or a database driver's words. ("at " alone
// would also match our own "must have at most 32 items", so frames are
// matched by their shape.)
const leaks: RegExp[] = [
  /\n\s+at /,
  /\bat (?:async )?[\w$.<>]+ \(/,
  /\bat (?:file|node):/,
  /\.[jt]s:\d+/,
  /node_modules/,
  /\bSELECT\b/i,
  /\bINSERT\b/i,
  /\bUPDATE "?users/i,
  /postgres/i,
  /pglite/i,
  /kysely/i,
  /\bpg\b/,
  /relation "/,
  /syntax error/i,
  /duplicate key/i,
  /violates/i,
];

function expectClean(text: string): void {
  for (const leak of leaks) expect(text, `answer leaks ${leak}`).not.toMatch(leak);
}

/** Decodes the details of a Connect unary JSON error body, checking it for leaks. */
function connectError(a: RawAnswer): { code: string; message: string; fields: string[] } {
  const text = a.body.toString("utf8");
  expectClean(text);
  const json = JSON.parse(text) as { code: string; message: string; details?: { type: string; value: string }[] };
  const fields = (json.details ?? [])
    .filter((d) => d.type === "google.rpc.BadRequest")
    .flatMap((d) => fromBinary(BadRequestSchema, Buffer.from(d.value, "base64")).fieldViolations.map((v) => v.field));
  return { code: json.code, message: json.message, fields };
}

function grpcAnswer(a: RawAnswer): { code: number; message: string } {
  const status = grpcStatus(a);
  expectClean(JSON.stringify(a.headers) + JSON.stringify(a.trailers) + a.body.toString("latin1"));
  return status;
}

async function rejection(promise: Promise<unknown>): Promise<ConnectError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, "expected the call to fail").toBeInstanceOf(ConnectError);
  const ce = err as ConnectError;
  expectClean(`${ce.rawMessage} ${JSON.stringify(ce.findDetails(BadRequestSchema))}`);
  return ce;
}

function violatedFields(err: ConnectError): string[] {
  return err.findDetails(BadRequestSchema).flatMap((d) => d.fieldViolations.map((v) => v.field));
}

// Protobuf bytes that do not parse as a CreateUserRequest, each for a different reason.
const garbage: [string, Buffer][] = [
  ["an overlong varint", Buffer.alloc(16, 0xff)],
  ["a length running past the end", Buffer.from([0x0a, 0x7f, 0x01])],
  ["an invalid wire type", Buffer.from([0x0f, 0x00])],
  // user { email: ED A0 80 } — an unpaired surrogate encoded as UTF-8 (CESU-8), invalid UTF-8.
  ["invalid UTF-8 (a UTF-8-encoded surrogate) in user.email", Buffer.from([0x0a, 0x05, 0x12, 0x03, 0xed, 0xa0, 0x80])],
];

// Unary calls are served by Anvil's fast path (src/server/fast-unary/) unless
// ANVIL_FAST_UNARY=off, when connect's universal handler and
// binary-parse-errors.ts answer them; both must refuse bad input alike.
const servingPaths = ["on", "off"] as const;

describe.each(databaseKinds.flatMap((kind) => servingPaths.map((fast) => [kind, fast] as const)))("bad input on %s, fast unary %s", (kind, fast) => {
  let server: TestServer;
  let token: string;
  let auth: Record<string, string>;
  let admin: Client<typeof UserService>;
  let existing: User;

  beforeAll(async () => {
    server = await startServer(kind, { env: { ANVIL_FAST_UNARY: fast } });
    token = await server.token();
    auth = { authorization: `Bearer ${token}` };
    admin = clientFor(UserService, "connect-json", server.baseUrl, token);
    existing = (await admin.createUser({ user: { email: "existing@example.com", displayName: "Existing", roles: ["viewer"] } })).user!;
  });
  afterAll(() => server?.close());

  /** Every user of the tenant, with etags: equal before and after means nothing changed. */
  const snapshot = async () => (await admin.listUsers({ pageSize: 1000 })).users;
  const unchanged = async (before: User[]) => expect(await snapshot()).toEqual(before);

  describe("malformed JSON", () => {
    it.each([
      ["truncated JSON", '{"user": {"email": '],
      ["not JSON at all", "hello"],
      ["a string where a message goes", '{"user": "alice@example.com"}'],
      ["a string where a list goes", '{"user": {"email": "a@example.com", "roles": "admin"}}'],
      ["a number where a string goes", '{"user": {"email": 5}}'],
    ])("refuses %s over Connect with 400 invalid_argument", async (_name, body) => {
      const before = await snapshot();
      const answer = await h1PostAll(server.port, `${service}/CreateUser`, { ...auth, "content-type": "application/json" }, body);
      expect(answer.status).toBe(400);
      expect(connectError(answer).code).toBe("invalid_argument");
      await unchanged(before);
    });

    it("refuses malformed JSON over gRPC and gRPC-Web with INVALID_ARGUMENT", async () => {
      const before = await snapshot();
      const body = envelope(Buffer.from('{"user": {"email": '));
      const grpc = await h2Grpc(server.port, `${service}/CreateUser`, { ...auth, "content-type": "application/grpc+json" }, body);
      expect(grpcAnswer(grpc).code).toBe(Code.InvalidArgument);
      const web = await h1PostAll(server.port, `${service}/CreateUser`, { ...auth, "content-type": "application/grpc-web+json" }, body);
      expect(grpcAnswer(web).code).toBe(Code.InvalidArgument);
      await unchanged(before);
    });
  });

  describe("malformed protobuf", () => {
    it.each(garbage)("refuses %s over Connect binary with 400 invalid_argument, plain and gzipped", async (_name, bytes) => {
      const before = await snapshot();
      const plain = await h1PostAll(server.port, `${service}/CreateUser`, { ...auth, "content-type": "application/proto" }, bytes);
      expect(plain.status).toBe(400);
      expect(connectError(plain).code).toBe("invalid_argument");
      const gzipped = await h1PostAll(
        server.port,
        `${service}/CreateUser`,
        { ...auth, "content-type": "application/proto", "content-encoding": "gzip" },
        gzipSync(bytes),
      );
      expect(gzipped.status).toBe(400);
      expect(connectError(gzipped).code).toBe("invalid_argument");
      await unchanged(before);
    });

    it.each(garbage)("refuses %s over gRPC (HTTP/2) with INVALID_ARGUMENT, plain and gzipped", async (_name, bytes) => {
      const before = await snapshot();
      const plain = await h2Grpc(server.port, `${service}/CreateUser`, auth, envelope(bytes));
      expect(grpcAnswer(plain)).toEqual({ code: Code.InvalidArgument, message: expect.stringMatching(/^parse binary: /) });
      const gzipped = await h2Grpc(server.port, `${service}/CreateUser`, { ...auth, "grpc-encoding": "gzip" }, envelope(gzipSync(bytes), 0x01));
      expect(grpcAnswer(gzipped).code).toBe(Code.InvalidArgument);
      await unchanged(before);
    });

    it.each(garbage)("refuses %s over gRPC-Web (HTTP/1.1) with INVALID_ARGUMENT, plain and gzipped", async (_name, bytes) => {
      const before = await snapshot();
      const headers = { ...auth, "content-type": "application/grpc-web+proto", "x-grpc-web": "1" };
      const plain = await h1PostAll(server.port, `${service}/CreateUser`, headers, envelope(bytes));
      expect(grpcAnswer(plain).code).toBe(Code.InvalidArgument);
      const gzipped = await h1PostAll(server.port, `${service}/CreateUser`, { ...headers, "grpc-encoding": "gzip" }, envelope(gzipSync(bytes), 0x01));
      expect(grpcAnswer(gzipped).code).toBe(Code.InvalidArgument);
      await unchanged(before);
    });

    it("refuses a body that claims gzip but is not, on every protocol", async () => {
      const before = await snapshot();
      const notGzip = Buffer.from("definitely not gzip");
      const connect = await h1PostAll(
        server.port,
        `${service}/CreateUser`,
        { ...auth, "content-type": "application/proto", "content-encoding": "gzip" },
        notGzip,
      );
      expect(connectError(connect).code).toBe("invalid_argument");
      const grpc = await h2Grpc(server.port, `${service}/CreateUser`, { ...auth, "grpc-encoding": "gzip" }, envelope(notGzip, 0x01));
      expect(grpcAnswer(grpc).code).toBe(Code.InvalidArgument);
      const web = await h1PostAll(
        server.port,
        `${service}/CreateUser`,
        { ...auth, "content-type": "application/grpc-web+proto", "grpc-encoding": "gzip" },
        envelope(notGzip, 0x01),
      );
      expect(grpcAnswer(web).code).toBe(Code.InvalidArgument);
      await unchanged(before);
    });

    it.each(garbage)("refuses %s in a Connect GET (always the universal handler) with 400 invalid_argument", async (_name, bytes) => {
      const query = `encoding=proto&base64=1&connect=v1&message=${bytes.toString("base64url")}`;
      const answer = await h1Get(server.port, `${service}/GetUser?${query}`, auth);
      expect(answer.status).toBe(400);
      expect(connectError(answer).code).toBe("invalid_argument");
      const json = await h1Get(server.port, `${service}/GetUser?encoding=json&connect=v1&message=${encodeURIComponent('{"id":')}`, auth);
      expect(json.status).toBe(400);
      expect(connectError(json).code).toBe("invalid_argument");
    });

    it("still serves a well-formed binary request after all that", async () => {
      const client = clientFor(UserService, "grpc", server.baseUrl, token);
      expect((await client.getUser({ id: existing.id })).user).toEqual(existing);
    });
  });

  describe("wrong content type", () => {
    it.each(["text/plain", "application/xml", "multipart/form-data; boundary=x", "application/x-www-form-urlencoded"])(
      "refuses %s over Connect with 415",
      async (contentType) => {
        const before = await snapshot();
        const answer = await h1PostAll(server.port, `${service}/CreateUser`, { ...auth, "content-type": contentType }, '{"user":{"email":"ct@example.com"}}');
        expect(answer.status).toBe(415);
        expectClean(answer.body.toString("utf8"));
        await unchanged(before);
      },
    );
  });

  describe("invalid field values", () => {
    describe.each(protocols)("over %s", (protocol: Protocol) => {
      const client = () => clientFor(UserService, protocol, server.baseUrl, token);

      /** Runs a bad call, checks every expected field is named, and that nothing changed. */
      const refuses = async (call: () => Promise<unknown>, fields: string[]) => {
        const before = await snapshot();
        const err = await rejection(call());
        expect(Code[err.code]).toBe(Code[Code.InvalidArgument]);
        expect(new Set(violatedFields(err))).toEqual(new Set(fields));
        for (const field of fields) expect(err.rawMessage).toContain(field);
        await unchanged(before);
      };

      it("names every violated field of a create at once", async () => {
        await refuses(
          () =>
            client().createUser({
              user: { email: "not-an-email", displayName: "x".repeat(201), roles: ["Admin!", "viewer", "viewer", "r".repeat(65)] },
              requestId: "not-a-uuid",
            }),
          ["user.email", "user.display_name", "user.roles", "user.roles[0]", "user.roles[3]", "request_id"],
        );
      });

      it("refuses too many roles", async () => {
        const roles = Array.from({ length: 33 }, (_, i) => `role${i}`);
        await refuses(() => client().createUser({ user: { email: `${randomUUID()}@example.com`, roles } }), ["user.roles"]);
      });

      it("counts display_name in characters: 200 astral characters pass, 201 do not", async () => {
        await refuses(() => client().createUser({ user: { email: `${randomUUID()}@example.com`, displayName: "😀".repeat(201) } }), [
          "user.display_name",
        ]);
        const ok = await client().createUser({ user: { email: `astral-${protocol}@example.com`, displayName: "😀".repeat(200) } });
        expect(ok.user?.displayName).toBe("😀".repeat(200));
      });

      it("refuses a missing user and a missing email", async () => {
        await refuses(() => client().createUser({}), ["user"]);
        await refuses(() => client().createUser({ user: { displayName: "no email" } }), ["user.email"]);
      });

      it("refuses ids that are not UUIDs", async () => {
        await refuses(() => client().getUser({ id: "not-a-uuid" }), ["id"]);
        await refuses(() => client().getUser({ id: "' or 1=1 --" }), ["id"]);
        await refuses(() => client().deleteUser({ id: "1234" }), ["id"]);
        await refuses(() => client().getUser({ id: "" }), ["id"]);
      });

      it("refuses a bad update, naming every field, and writes nothing", async () => {
        await refuses(
          () =>
            client().updateUser({
              user: { id: "zzz", email: "bad", displayName: "y".repeat(201), roles: ["BAD"] },
              updateMask: { paths: ["email", "display_name", "roles"] },
            }),
          ["user.id", "user.email", "user.display_name", "user.roles[0]"],
        );
        await refuses(
          () =>
            client().updateUser({
              user: { id: existing.id, email: "still-bad", roles: ["a", "a"] },
              updateMask: { paths: ["email", "roles"] },
            }),
          ["user.email", "user.roles"],
        );
        expect((await admin.getUser({ id: existing.id })).user).toEqual(existing);
      });

      it("refuses a negative page_size", async () => {
        await refuses(() => client().listUsers({ pageSize: -1 }), ["page_size"]);
        await refuses(() => client().listUsers({ pageSize: -2147483648 }), ["page_size"]);
      });

      it("refuses NUL characters in email, display_name and roles items", async () => {
        await refuses(
          () => client().createUser({ user: { email: "nul\u0000@example.com", displayName: "a\u0000b", roles: ["viewer", "ed\u0000itor"] } }),
          ["user.email", "user.display_name", "user.roles[1]"],
        );
        await refuses(
          () => client().updateUser({ user: { id: existing.id, displayName: "\u0000" }, updateMask: { paths: ["display_name"] } }),
          ["user.display_name"],
        );
        await refuses(() => client().listUsers({ pageToken: "\u0000" }), ["page_token"]);
      });

      if (protocol === "connect-json") {
        // Only JSON can carry an unpaired surrogate (as a \ud800 escape); a
        // binary client must encode it as UTF-8 first, and the raw-bytes case
        // is covered under malformed protobuf.
        it.each([
          ["email", { email: "a\ud800@example.com" }],
          ["display_name", { email: "ok@example.com", displayName: "x\udc00y" }],
          ["roles", { email: "ok@example.com", roles: ["viewer", "v\ud800"] }],
        ])("refuses an unpaired surrogate in %s, naming it", async (field, user) => {
          // protobuf-es refuses the string while decoding the JSON (before the
          // field rules run), so the message names the field but carries no
          // BadRequest detail.
          const before = await snapshot();
          const err = await rejection(client().createUser({ user }));
          expect(Code[err.code]).toBe(Code[Code.InvalidArgument]);
          expect(err.rawMessage).toContain(`anvil.users.v1.User.${field}`);
          await unchanged(before);
        });
      }
    });

    it.each([
      ["email", '{"user":{"email":"a\\ud800@example.com"}}'],
      ["display_name", '{"user":{"email":"a@example.com","display_name":"x\\udc00y"}}'],
      ["roles", '{"user":{"email":"a@example.com","roles":["viewer","v\\ud800"]}}'],
      ["email", '{"user":{"email":"\\udfff\\ud800@example.com"}}'],
    ])("refuses an unpaired surrogate in %s in raw JSON a script sends", async (field, body) => {
      const before = await snapshot();
      const answer = await h1PostAll(server.port, `${service}/CreateUser`, { ...auth, "content-type": "application/json" }, body);
      expect(answer.status).toBe(400);
      const err = connectError(answer);
      expect(err.code).toBe("invalid_argument");
      expect(err.message).toContain(`anvil.users.v1.User.${field}`);
      await unchanged(before);
    });

    it("refuses a NUL in raw JSON a script sends, naming the field", async () => {
      const before = await snapshot();
      const nul = await h1PostAll(server.port, `${service}/CreateUser`, { ...auth, "content-type": "application/json" }, '{"user":{"email":"a@example.com","display_name":"\\u0000"}}');
      expect(connectError(nul).fields).toEqual(["user.display_name"]);
      await unchanged(before);
    });
  });

  describe("forged page tokens", () => {
    it("refuses every forgery with INVALID_ARGUMENT naming page_token", async () => {
      for (let i = 0; i < 3; i++) await admin.createUser({ user: { email: `page-${i}-${randomUUID()}@example.com` } });
      const first = await admin.listUsers({ pageSize: 1 });
      expect(first.nextPageToken).not.toBe("");
      const [payload, mac] = first.nextPageToken.split(".") as [string, string];
      const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString("base64url");
      const globex = clientFor(UserService, "connect-json", server.baseUrl, await server.token("globex-admin"));
      const forgeries: [string, Client<typeof UserService>, string][] = [
        ["garbage", admin, "garbage"],
        ["a payload without its MAC", admin, payload],
        ["an empty MAC", admin, `${payload}.`],
        ["a MAC without a payload", admin, `.${mac}`],
        ["an edited payload", admin, `${payload}x.${mac}`],
        ["SQL in the payload", admin, `${b64(["1970-01-01T00:00:00.000Z", "' or 1=1 --"])}.${mac}`],
        ["a forged MAC", admin, `${b64(["1970-01-01T00:00:00.000Z", randomUUID()])}.${Buffer.alloc(18).toString("base64url")}`],
        ["another tenant's replay", globex, first.nextPageToken],
        ["a token longer than 1024 characters", admin, `${"a".repeat(1100)}.${mac}`],
      ];
      for (const [name, client, pageToken] of forgeries) {
        const err = await rejection(client.listUsers({ pageSize: 1, pageToken }));
        expect(Code[err.code], name).toBe(Code[Code.InvalidArgument]);
        expect(violatedFields(err), name).toEqual(["page_token"]);
      }
      // The genuine token still works.
      expect((await admin.listUsers({ pageSize: 1, pageToken: first.nextPageToken })).users).toHaveLength(1);
    });
  });
});

describe.each(databaseKinds.flatMap((kind) => servingPaths.map((fast) => [kind, fast] as const)))("oversized bodies on %s, fast unary %s (limit 1 MiB)", (kind, fast) => {
  let server: TestServer;
  let auth: Record<string, string>;
  let admin: Client<typeof UserService>;
  beforeAll(async () => {
    server = await startServer(kind, { env: { ANVIL_MAX_REQUEST_BYTES: String(MiB), ANVIL_FAST_UNARY: fast } });
    const token = await server.token();
    auth = { authorization: `Bearer ${token}` };
    admin = clientFor(UserService, "connect-json", server.baseUrl, token);
  });
  afterAll(() => server?.close());

  const nothingCreated = async () => expect((await admin.listUsers({ pageSize: 1000 })).users).toEqual([]);

  it.each(protocols)("refuses a 2 MiB create over %s with RESOURCE_EXHAUSTED", async (protocol) => {
    const client = clientFor(UserService, protocol, server.baseUrl, await server.token());
    // Twice, then a small call: over HTTP/1.1 keep-alive the same connection
    // carries them, so a refused body left half-read would hang the next call.
    for (let i = 0; i < 2; i++) {
      const err = await rejection(client.createUser({ user: { email: "big@example.com", displayName: "x".repeat(2 * MiB) } }));
      expect(Code[err.code]).toBe(Code[Code.ResourceExhausted]);
    }
    expect((await client.listUsers({})).users).toEqual([]);
    await nothingCreated();
  });

  it("refuses a 2 MiB JSON POST from a script with resource_exhausted", async () => {
    const body = JSON.stringify({ user: { email: "big@example.com", displayName: "x".repeat(2 * MiB) } });
    const answer = await h1PostAll(server.port, `${service}/CreateUser`, { ...auth, "content-type": "application/json" }, body);
    expect(answer.status).toBe(429);
    expect(connectError(answer).code).toBe("resource_exhausted");
    await nothingCreated();
  });

  it("answers a Connect request declaring 2 GiB without waiting for the body", async () => {
    const answer = await h1Post(
      server.port,
      `${service}/CreateUser`,
      { ...auth, "content-type": "application/json", "content-length": String(2 * 1024 * MiB) },
      (req) => {
        req.write(Buffer.alloc(64 * 1024, 0x20));
      },
    );
    expect(answer.sent).toBe(64 * 1024);
    expect(answer.status).toBe(429);
    expect(connectError(answer).code).toBe("resource_exhausted");
  });

  it("stops reading a chunked Connect body of unknown length soon after the limit", async () => {
    const chunk = Buffer.alloc(64 * 1024, 0x20);
    const answer = await h1Post(server.port, `${service}/CreateUser`, { ...auth, "content-type": "application/json" }, async (req, answered) => {
      let done = false;
      void answered.then(() => (done = true));
      // Keep sending until the server answers; 64 MiB without an answer means it buffers everything.
      for (let sent = 0; !done && sent < 64 * MiB; sent += chunk.byteLength) {
        if (!req.write(chunk)) await Promise.race([new Promise((r) => req.once("drain", r)), answered]);
      }
      if (!done) req.end();
    });
    expect(answer.status).toBe(429);
    expect(connectError(answer).code).toBe("resource_exhausted");
    expect(answer.sent).toBeLessThan(16 * MiB);
    await nothingCreated();
  });

  it("answers a gRPC envelope whose length prefix says 1 GiB without waiting for it", async () => {
    const answer = await h2Grpc(server.port, `${service}/CreateUser`, auth, envelope(Buffer.alloc(1024), 0, 1024 * MiB), false);
    expect(grpcAnswer(answer).code).toBe(Code.ResourceExhausted);
  });

  it("answers a gRPC-Web envelope whose length prefix says 1 GiB without waiting for it", async () => {
    const answer = await h1Post(
      server.port,
      `${service}/CreateUser`,
      { ...auth, "content-type": "application/grpc-web+proto" },
      (req) => {
        req.write(envelope(Buffer.alloc(1024), 0, 1024 * MiB));
      },
    );
    expect(answer.sent).toBe(1029);
    expect(grpcAnswer(answer).code).toBe(Code.ResourceExhausted);
  });

  it("refuses a small gzip body that inflates beyond the limit, on every protocol", async () => {
    const bomb = gzipSync(Buffer.alloc(8 * MiB));
    expect(bomb.byteLength).toBeLessThan(MiB / 8);
    const connect = await h1PostAll(
      server.port,
      `${service}/CreateUser`,
      { ...auth, "content-type": "application/proto", "content-encoding": "gzip" },
      bomb,
    );
    expect(connectError(connect).code).toBe("resource_exhausted");
    const grpc = await h2Grpc(server.port, `${service}/CreateUser`, { ...auth, "grpc-encoding": "gzip" }, envelope(bomb, 0x01));
    expect(grpcAnswer(grpc).code).toBe(Code.ResourceExhausted);
    const web = await h1PostAll(
      server.port,
      `${service}/CreateUser`,
      { ...auth, "content-type": "application/grpc-web+proto", "grpc-encoding": "gzip" },
      envelope(bomb, 0x01),
    );
    expect(grpcAnswer(web).code).toBe(Code.ResourceExhausted);
    await nothingCreated();
  });

  it("still serves requests under the limit", async () => {
    const { user } = await admin.createUser({ user: { email: "small@example.com", displayName: "x".repeat(200) } });
    expect(user?.displayName).toHaveLength(200);
  });
});
