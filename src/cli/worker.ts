import { hostname } from "node:os";
import { parseArgs } from "node:util";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { SignJWT } from "jose";
import { WorkerService } from "../../gen/anvil/operations/v1/operations_pb.js";
import { loadKeyStore } from "../auth/key-store.js";
import { demoKinds } from "../worker/demo-kinds.js";
import { runWorker } from "../worker/task-runner.js";

/**
 * The reference worker: claims tasks of the built-in demo kinds from a
 * gateway over Connect and carries them out.
 *   npm run worker -- --kinds demo,demo-fail --url http://localhost:8080 --token "$TOKEN"
 * Without --token (or ANVIL_TOKEN) it mints one with the `worker` role from
 * the keys file (--key, default: the first key), as `npm run token` does.
 */
async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      kinds: { type: "string", default: "demo,demo-fail" },
      url: { type: "string", default: "http://localhost:8080" },
      token: { type: "string" },
      key: { type: "string" },
      "keys-file": { type: "string" },
      id: { type: "string", default: `${hostname()}-${process.pid}` },
      concurrency: { type: "string", default: "1" },
      lease: { type: "string", default: "30" },
    },
  });
  const kinds = values.kinds.split(",").map((k) => k.trim()).filter(Boolean);
  const unknown = kinds.filter((k) => !(k in demoKinds));
  if (kinds.length === 0 || unknown.length > 0) throw new Error(`unknown kinds ${unknown.join(", ")}; built in: ${Object.keys(demoKinds).join(", ")}`);
  const token = values.token ?? process.env.ANVIL_TOKEN ?? (await mintWorkerToken(values.key, values["keys-file"]));
  const transport = createConnectTransport({
    baseUrl: values.url,
    httpVersion: "1.1",
    interceptors: [(next) => (req) => { req.header.set("authorization", `Bearer ${token}`); return next(req); }],
  });
  const stop = new AbortController();
  for (const signal of ["SIGINT", "SIGTERM"] as const) process.on(signal, () => stop.abort());
  const log = (line: string) => process.stdout.write(`${new Date().toISOString()} ${line}\n`);
  log(`worker ${values.id} claiming ${kinds.join(", ")} from ${values.url}`);
  await runWorker({
    client: createClient(WorkerService, transport),
    handlers: Object.fromEntries(kinds.map((k) => [k, demoKinds[k]!])),
    workerId: values.id,
    leaseMs: Number(values.lease) * 1000,
    concurrency: Math.max(1, Number(values.concurrency) || 1),
    signal: stop.signal,
    log,
  });
}

async function mintWorkerToken(keyId: string | undefined, keysFile: string | undefined): Promise<string> {
  const keys = loadKeyStore(keysFile ?? process.env.ANVIL_KEYS_FILE ?? "./.anvil/service-accounts.json", false);
  const key = keyId ? keys.get(keyId) : keys.values().next().value;
  if (!key) throw new Error(`no key ${keyId ?? ""} in the keys file; pass --token or --key`);
  return new SignJWT({ tenant: key.tenant, roles: ["worker"] })
    .setProtectedHeader({ alg: "HS256", kid: key.keyId, typ: "JWT" })
    .setSubject(`worker:${hostname()}`)
    .setIssuedAt()
    .setExpirationTime("12h")
    .sign(key.secretBytes);
}

main().catch((err: unknown) => {
  process.stderr.write(`worker failed: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
