import * as grpc from "@grpc/grpc-js";
import { service as healthDefinition } from "grpc-health-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { apiServices, infrastructureServices } from "../src/server/services.js";
import { databaseKinds } from "./support/databases.js";
import { privatePostgresAvailable, startPrivatePostgres, type PrivatePostgres } from "./support/private-postgres.js";
import { startServer, type TestServer } from "./support/server.js";

// grpc-health-check's own descriptor and proto-loader serialization: a
// client that shares no code with Anvil, as a load balancer's would.
const HealthClient = grpc.makeGenericClientConstructor(healthDefinition as unknown as grpc.ServiceDefinition, "Health");
type Status = "UNKNOWN" | "SERVING" | "NOT_SERVING" | "SERVICE_UNKNOWN";

interface Health {
  check(service: string): Promise<Status>;
  watch(service: string): Watch;
  close(): void;
}

/** An open Watch stream: every status it has received so far, in order. */
interface Watch {
  readonly seen: Status[];
  /** Resolves when the server ends the call (with any status). */
  readonly ended: Promise<void>;
  /** Resolves once the latest status received is `status`. */
  until(status: Status, timeoutMs?: number): Promise<void>;
  cancel(): void;
}

function healthClient(port: number): Health {
  const client = new HealthClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure()) as unknown as Record<string, Function> & grpc.Client;
  return {
    check: (service) =>
      new Promise((resolve, reject) => {
        client.Check!.call(client, { service }, new grpc.Metadata(), { deadline: Date.now() + 10_000 }, (err: grpc.ServiceError | null, res: { status: Status }) =>
          err ? reject(err) : resolve(res.status),
        );
      }),
    watch: (service) => {
      const call: grpc.ClientReadableStream<{ status: Status }> = client.Watch!.call(client, { service });
      const seen: Status[] = [];
      const waiters = new Set<() => void>();
      call.on("data", (res: { status: Status }) => {
        seen.push(res.status);
        for (const w of waiters) w();
      });
      const ended = new Promise<void>((resolve) => {
        call.on("status", () => resolve());
        call.on("error", () => resolve()); // cancellation ends every watch too
      });
      return {
        seen,
        ended,
        until: (status, timeoutMs = 15_000) =>
          new Promise((resolve, reject) => {
            if (seen.at(-1) === status) return resolve();
            const timer = setTimeout(() => {
              waiters.delete(check);
              reject(new Error(`watch saw ${JSON.stringify(seen)}, never ${status}`));
            }, timeoutMs);
            const check = () => {
              if (seen.at(-1) !== status) return;
              clearTimeout(timer);
              waiters.delete(check);
              resolve();
            };
            waiters.add(check);
          }),
        cancel: () => call.cancel(),
      };
    },
    close: () => client.close(),
  };
}

async function eventually(probe: () => Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() > end) throw new Error("condition not reached in time");
    await new Promise((r) => setTimeout(r, 200));
  }
}

const servedNames = [...apiServices, ...infrastructureServices].map((s) => s.typeName);

describe.each(databaseKinds)("gRPC health and probes on %s", (kind) => {
  let server: TestServer;
  let health: Health;
  beforeAll(async () => {
    server = await startServer(kind);
    health = healthClient(server.port);
  });
  afterAll(async () => {
    health?.close();
    await server?.close();
  });

  it("Check reports SERVING overall and for every served service, without a token", async () => {
    expect(await health.check("")).toBe("SERVING");
    expect(servedNames).toContain("anvil.users.v1.UserService");
    for (const name of servedNames) expect(await health.check(name)).toBe("SERVING");
  });

  it("Check of an unknown service fails with NOT_FOUND", async () => {
    await expect(health.check("anvil.nope.v1.NopeService")).rejects.toMatchObject({ code: grpc.status.NOT_FOUND });
  });

  it("Watch sends the current status, and SERVICE_UNKNOWN for an unknown service without ending the call", async () => {
    const overall = health.watch("");
    const unknown = health.watch("anvil.nope.v1.NopeService");
    try {
      await overall.until("SERVING");
      await unknown.until("SERVICE_UNKNOWN");
      expect(overall.seen).toEqual(["SERVING"]);
    } finally {
      overall.cancel();
      unknown.cancel();
    }
  });

  it("answers GET /healthz and /readyz without auth", async () => {
    const live = await fetch(`${server.baseUrl}/healthz`);
    expect(live.status).toBe(200);
    expect(await live.json()).toEqual({ status: "ok" });
    const ready = await fetch(`${server.baseUrl}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toMatchObject({ status: "ready", database: kind });
  });

  it("turns NOT_SERVING, on Check, Watch and /readyz, once the app drains", async () => {
    const draining = await startServer(kind);
    const client = healthClient(draining.port);
    const watch = client.watch("anvil.users.v1.UserService");
    try {
      await watch.until("SERVING");
      draining.app.drain();
      expect(await client.check("")).toBe("NOT_SERVING");
      expect(await client.check("anvil.users.v1.UserService")).toBe("NOT_SERVING");
      await watch.until("NOT_SERVING");
      // Having said so, the watch ends rather than hold the shutdown open.
      await watch.ended;
      expect(watch.seen).toEqual(["SERVING", "NOT_SERVING"]);
      expect((await fetch(`${draining.baseUrl}/readyz`)).status).toBe(503);
      expect((await fetch(`${draining.baseUrl}/healthz`)).status).toBe(200);
    } finally {
      watch.cancel();
      client.close();
      await draining.close();
    }
  });
});

// Stopping a database is only safe on a cluster this test owns: the shared
// server at 127.0.0.1:5432 serves other test files at the same time.
describe.skipIf(!privatePostgresAvailable)("gRPC health while a private PostgreSQL cluster stops and starts", () => {
  let cluster: PrivatePostgres;
  let server: TestServer;
  let health: Health;
  beforeAll(async () => {
    cluster = await startPrivatePostgres();
    server = await startServer("postgres", { database: { kind: "postgres", url: cluster.url, drop: async () => {} } });
    health = healthClient(server.port);
  }, 120_000);
  afterAll(async () => {
    health?.close();
    await server?.close();
    await cluster?.destroy();
  });

  it("reports NOT_SERVING while the database is down and SERVING again after it restarts", async () => {
    expect(await health.check("")).toBe("SERVING");
    const watch = health.watch("");
    try {
      await watch.until("SERVING");
      await cluster.stop();
      await eventually(async () => (await health.check("")) === "NOT_SERVING");
      expect(await health.check("anvil.users.v1.UserService")).toBe("NOT_SERVING");
      await watch.until("NOT_SERVING");
      expect((await fetch(`${server.baseUrl}/readyz`)).status).toBe(503);

      await cluster.start();
      await eventually(async () => (await health.check("")) === "SERVING");
      await watch.until("SERVING");
      expect(watch.seen).toEqual(["SERVING", "NOT_SERVING", "SERVING"]);
      expect((await fetch(`${server.baseUrl}/readyz`)).status).toBe(200);
    } finally {
      watch.cancel();
    }
  }, 120_000);
});
