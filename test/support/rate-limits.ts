import { type ChildProcess, spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { createServer } from "node:net";
import { Code, ConnectError } from "@connectrpc/connect";
import { ApiKeyService } from "../../gen/anvil/apikeys/v1/apikeys_pb.js";
import { clientFor } from "./clients.js";
import type { TestServer } from "./server.js";

/** Small limits, so tests measure bursts and refills in seconds: free 5 at once then 1/s, pro 8 then 2/s. */
export const testTiers = {
  free: { burst: 5, ratePerMinute: 60 },
  pro: { burst: 8, ratePerMinute: 120 },
  enterprise: { burst: 100_000, ratePerMinute: 6_000_000 },
} as const;

/** Environment giving a test gateway testTiers, and optionally a Redis store under a prefix of its own. */
export function limitEnv(redisUrl?: string, prefix = `anvil-test:${randomUUID()}:`): Record<string, string> {
  return {
    ANVIL_RATE_LIMIT_TIERS: JSON.stringify(testTiers),
    ...(redisUrl === undefined ? {} : { ANVIL_REDIS_URL: redisUrl, ANVIL_REDIS_PREFIX: prefix }),
  };
}

/** Creates an API key of `tier` (as the tenant's admin) and returns its secret. */
export async function keyOfTier(server: TestServer, tier: string, roles: string[] = ["viewer"]): Promise<string> {
  return (await tieredKey(server, tier, roles)).secret;
}

/** Creates an API key of `tier` (as the tenant's admin): its id and secret. */
export async function tieredKey(server: TestServer, tier: string, roles: string[] = ["viewer"]): Promise<{ id: string; secret: string }> {
  const admin = clientFor(ApiKeyService, "connect-json", server.baseUrl, await server.token("acme-admin"));
  const created = await admin.createApiKey({ apiKey: { displayName: `rl-${randomUUID()}`, roles, tier } });
  return { id: created.apiKey!.id, secret: created.secret };
}

/** The error of a call that failed, or undefined when it succeeded. */
export async function outcome(call: Promise<unknown>): Promise<ConnectError | undefined> {
  return call.then(
    () => undefined,
    (e: unknown) => ConnectError.from(e),
  );
}

/**
 * Calls until the first RESOURCE_EXHAUSTED and returns how many calls were
 * allowed before it, the time that took, and the refusal. Any other error
 * fails the test.
 */
export async function drain(call: () => Promise<unknown>, max = 1_000): Promise<{ allowed: number; elapsedMs: number; refusal: ConnectError }> {
  const start = performance.now();
  for (let allowed = 0; allowed < max; allowed++) {
    const err = await outcome(call());
    if (err === undefined) continue;
    if (err.code !== Code.ResourceExhausted) throw err;
    return { allowed, elapsedMs: performance.now() - start, refusal: err };
  }
  throw new Error(`no refusal after ${max} calls`);
}

/** A free TCP port on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

/** A redis-server of the test's own on a free port, which the test can stop and start again. */
export class TestRedis {
  #process: ChildProcess | undefined;
  private constructor(readonly port: number) {}

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  static async start(): Promise<TestRedis> {
    const redis = new TestRedis(await freePort());
    await redis.start();
    return redis;
  }

  /** Starts the server (again, on the same port) and waits until it accepts connections. */
  async start(): Promise<void> {
    const child = spawn("/usr/bin/redis-server", ["--port", String(this.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], { stdio: ["ignore", "pipe", "ignore"] });
    this.#process = child;
    await new Promise<void>((resolve, reject) => {
      let out = "";
      child.stdout!.on("data", (chunk: Buffer) => {
        out += chunk.toString();
        if (out.includes("Ready to accept connections")) resolve();
      });
      child.once("exit", (code) => reject(new Error(`redis-server exited with ${code}: ${out.slice(-500)}`)));
    });
  }

  /** Stops the server and waits until it is gone. */
  async stop(): Promise<void> {
    const child = this.#process;
    if (child === undefined || child.exitCode !== null) return;
    this.#process = undefined;
    await new Promise<void>((resolve) => {
      child.once("exit", () => resolve());
      child.kill("SIGKILL");
    });
  }
}
