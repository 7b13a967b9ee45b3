import type { DescService } from "@bufbuild/protobuf";
import { Code, type Client } from "@connectrpc/connect";
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { clientFor, type Protocol, protocols } from "./clients.js";
import { databaseKinds } from "./databases.js";
import { expectCode } from "./expect-code.js";
import { startServer, type TestServer } from "./server.js";

/** What the shared behaviour suite needs to know about one resource. */
export interface ResourceSpec<S extends DescService, R> {
  /** Singular name, e.g. "user". */
  readonly name: string;
  readonly service: S;
  /** Key that may read and write (see support/tokens.ts). */
  readonly writerKey: string;
  /** Keys that must get PERMISSION_DENIED on a write. */
  readonly deniedWriterKeys: readonly string[];
  /** Keys that must get PERMISSION_DENIED on a read. */
  readonly deniedReaderKeys: readonly string[];
  /** Creates a resource; `seed` makes its unique fields unique. */
  create(client: Client<S>, seed: string, requestId?: string): Promise<R>;
  get(client: Client<S>, id: string): Promise<R>;
  list(client: Client<S>, pageSize: number, pageToken: string): Promise<{ items: R[]; next: string }>;
  /** Updates one mutable field to a value derived from `seed`, conditional on `etag` when given. */
  update(client: Client<S>, resource: R, seed: string, etag: string | undefined, mask?: string[]): Promise<R>;
  /** Whether `update(…, seed)` was applied to `resource`. */
  isUpdated(resource: R, seed: string): boolean;
  delete(client: Client<S>, id: string, etag?: string): Promise<void>;
  /** Sends a create with one invalid field; the error must name `invalidField`. */
  createInvalid(client: Client<S>): Promise<unknown>;
  readonly invalidField: string;
  id(resource: R): string;
  etag(resource: R): string;
}

/**
 * The behaviour every resource must show, against a real listening server,
 * on every database and over every protocol: create, get, paged list,
 * masked and conditional update, conditional delete, idempotent create,
 * tenant isolation, permissions and bad input — each failure with its exact code.
 */
export function describeResource<S extends DescService, R>(spec: ResourceSpec<S, R>): void {
  describe.each(databaseKinds)(`${spec.service.typeName} on %s`, (kind) => {
    let server: TestServer;
    const tokens: Record<string, string> = {};
    beforeAll(async () => {
      server = await startServer(kind);
      for (const id of [spec.writerKey, "globex-admin", ...spec.deniedReaderKeys, ...spec.deniedWriterKeys]) {
        tokens[id] = await server.token(id);
      }
    });
    afterAll(() => server?.close());

    describe.each(protocols)("over %s", (protocol: Protocol) => {
      const client = (key = spec.writerKey) => clientFor(spec.service, protocol, server.baseUrl, tokens[key]);
      const seed = () => `${protocol}-${randomUUID().slice(0, 8)}`;

      it("creates and gets", async () => {
        const created = await spec.create(client(), seed());
        expect(spec.id(created)).toMatch(/^[0-9a-f-]{36}$/);
        expect(spec.etag(created)).not.toBe("");
        const got = await spec.get(client(), spec.id(created));
        expect(got).toEqual(created);
      });

      it("lists every resource exactly once across pages, ending with an empty token", async () => {
        const ids = new Set<string>();
        for (let i = 0; i < 5; i++) ids.add(spec.id(await spec.create(client(), seed())));
        const seen: string[] = [];
        let token = "";
        let pages = 0;
        do {
          const page = await spec.list(client(), 2, token);
          expect(page.items.length).toBeLessThanOrEqual(2);
          seen.push(...page.items.map(spec.id));
          token = page.next;
          pages++;
          // A row inserted mid-walk must not shift the pages (keyset, not OFFSET).
          if (pages === 1) await spec.create(client(), seed());
        } while (token !== "" && pages < 1000);
        expect(new Set(seen).size).toBe(seen.length);
        for (const id of ids) expect(seen).toContain(id);
      });

      it("refuses forged and foreign page tokens", async () => {
        for (let i = 0; i < 3; i++) await spec.create(client(), seed());
        const first = await spec.list(client(), 1, "");
        expect(first.next).not.toBe("");
        const [payload, mac] = first.next.split(".");
        const forged = `${Buffer.from(JSON.stringify(["1970-01-01T00:00:00.000Z", "' or 1=1 --"])).toString("base64url")}.${mac}`;
        await expectCode(spec.list(client(), 1, forged), Code.InvalidArgument);
        await expectCode(spec.list(client(), 1, `${payload}x.${mac}`), Code.InvalidArgument);
        await expectCode(spec.list(client(), 1, "garbage"), Code.InvalidArgument);
        await expectCode(spec.list(client("globex-admin"), 1, first.next), Code.InvalidArgument);
      });

      it("updates the masked field with a matching etag and refuses a stale one", async () => {
        const created = await spec.create(client(), seed());
        const s1 = seed();
        const updated = await spec.update(client(), created, s1, spec.etag(created));
        expect(spec.isUpdated(updated, s1)).toBe(true);
        expect(spec.etag(updated)).not.toBe(spec.etag(created));
        const s2 = seed();
        await expectCode(spec.update(client(), created, s2, spec.etag(created)), Code.Aborted);
        const after = await spec.get(client(), spec.id(created));
        expect(spec.isUpdated(after, s1)).toBe(true);
        expect(spec.etag(after)).toBe(spec.etag(updated));
      });

      it("refuses unknown and immutable mask paths and changes nothing", async () => {
        const created = await spec.create(client(), seed());
        await expectCode(spec.update(client(), created, seed(), undefined, ["no_such_field"]), Code.InvalidArgument);
        await expectCode(spec.update(client(), created, seed(), undefined, ["create_time"]), Code.InvalidArgument);
        await expectCode(spec.update(client(), created, seed(), undefined, []), Code.InvalidArgument);
        expect(await spec.get(client(), spec.id(created))).toEqual(created);
      });

      it("deletes conditionally, then reports NOT_FOUND", async () => {
        const created = await spec.create(client(), seed());
        const updated = await spec.update(client(), created, seed(), undefined);
        await expectCode(spec.delete(client(), spec.id(created), spec.etag(created)), Code.Aborted);
        await spec.delete(client(), spec.id(created), spec.etag(updated));
        await expectCode(spec.get(client(), spec.id(created)), Code.NotFound);
        await expectCode(spec.delete(client(), spec.id(created)), Code.NotFound);
      });

      it("replays a create retried with the same request_id", async () => {
        const requestId = randomUUID();
        const s = seed();
        const first = await spec.create(client(), s, requestId);
        const again = await spec.create(client(), s, requestId);
        expect(again).toEqual(first);
        await expectCode(spec.create(client(), seed(), requestId), Code.InvalidArgument);
      });

      it("keeps tenants apart: another tenant gets NOT_FOUND and never sees the row", async () => {
        const created = await spec.create(client(), seed());
        const other = client("globex-admin");
        await expectCode(spec.get(other, spec.id(created)), Code.NotFound);
        await expectCode(spec.update(other, created, seed(), undefined), Code.NotFound);
        await expectCode(spec.delete(other, spec.id(created)), Code.NotFound);
        let token = "";
        do {
          const page = await spec.list(other, 1000, token);
          expect(page.items.map(spec.id)).not.toContain(spec.id(created));
          token = page.next;
        } while (token !== "");
        expect(await spec.get(client(), spec.id(created))).toEqual(created);
      });

      it("enforces the permissions declared in the proto", async () => {
        const created = await spec.create(client(), seed());
        for (const key of spec.deniedWriterKeys) {
          await expectCode(spec.create(client(key), seed()), Code.PermissionDenied);
          await expectCode(spec.delete(client(key), spec.id(created)), Code.PermissionDenied);
        }
        for (const key of spec.deniedReaderKeys) {
          await expectCode(spec.get(client(key), spec.id(created)), Code.PermissionDenied);
        }
        const anonymous = clientFor(spec.service, protocol, server.baseUrl);
        await expectCode(spec.get(anonymous, spec.id(created)), Code.Unauthenticated);
        expect(await spec.get(client(), spec.id(created))).toEqual(created);
      });

      it("refuses an invalid field, naming it, and creates nothing", async () => {
        const before = await spec.list(client(), 1000, "");
        const err = await expectCode(spec.createInvalid(client()), Code.InvalidArgument);
        expect(err.message).toContain(spec.invalidField);
        const after = await spec.list(client(), 1000, "");
        expect(after.items.length).toBe(before.items.length);
      });
    });
  });
}
