import { hostname } from "node:os";
import { parseArgs } from "node:util";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { SignJWT } from "jose";
import { WorkerService } from "../../gen/anvil/operations/v1/operations_pb.js";
import { loadKeyStore } from "../auth/key-store.js";
import { demoKinds } from "../worker/demo-kinds.js";
import { RenewingToken } from "../worker/renewing-token.js";
import { runWorker } from "../worker/task-runner.js";
import { clientTracingInterceptor } from "../tracing/client-interceptor.js";
import { startTracing } from "../tracing/tracing.js";

/**
 * The reference worker: claims tasks of the built-in demo kinds from a
 * gateway over Connect and carries them out.
 *   npm run worker -- --kinds demo,demo-fail --url http://localhost:8080 --token "$TOKEN"
 * Without --token (or ANVIL_TOKEN) it mints its own tokens with the `worker`
 * role from the keys file (--key, default: the first key), as `npm run token`
 * does, each valid for --token-lifetime seconds and renewed at 80% of it.
 * On SIGTERM or SIGINT it stops claiming, finishes the task in hand (up to
 * --grace seconds; past that it leaves the task to its lease, uncompleted)
 * and exits 0; a second signal exits at once.
 * With OTEL_EXPORTER_OTLP_ENDPOINT set it exports traces as the gateway
 * does: each task's spans join the trace of the call that started its
 * operation (the task's trace_parent), and its calls send `traceparent`.
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
      "token-lifetime": { type: "string", default: "43200" },
      grace: { type: "string", default: "25" },
    },
  });
  // Exports when OTEL_EXPORTER_OTLP_ENDPOINT (or the traces one) is set, as the gateway does. A task's spans
  // follow its handler's awaits into the calls it makes (the client interceptor reads the active context).
  const tracing = await startTracing("anvil-worker", process.env, { asyncContext: true });
  const kinds = values.kinds.split(",").map((k) => k.trim()).filter(Boolean);
  const unknown = kinds.filter((k) => !(k in demoKinds));
  if (kinds.length === 0 || unknown.length > 0) throw new Error(`unknown kinds ${unknown.join(", ")}; built in: ${Object.keys(demoKinds).join(", ")}`);
  const given = values.token ?? process.env.ANVIL_TOKEN;
  const lifetimeSec = seconds(values["token-lifetime"], "--token-lifetime");
  const minted = given === undefined ? new RenewingToken((life) => mintWorkerToken(values.key, values["keys-file"], life), lifetimeSec) : undefined;
  await minted?.get(); // a bad key or keys file fails now, not at the first claim
  const transport = createConnectTransport({
    baseUrl: values.url,
    httpVersion: "1.1",
    interceptors: [
      clientTracingInterceptor(),
      (next) => async (req) => {
        req.header.set("authorization", `Bearer ${given ?? (await minted!.get())}`);
        return next(req);
      },
    ],
  });
  const log = (line: string) => process.stdout.write(`${new Date().toISOString()} ${line}\n`);
  const stop = new AbortController();
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    process.on(signal, () => {
      if (stop.signal.aborted) {
        log(`${signal} again: exiting now; a task in hand is left to its lease`);
        process.exit(1);
      }
      log(`${signal}: no more claims; finishing the task in hand`);
      stop.abort();
    });
  }
  log(`worker ${values.id} claiming ${kinds.join(", ")} from ${values.url}`);
  await runWorker({
    client: createClient(WorkerService, transport),
    handlers: Object.fromEntries(kinds.map((k) => [k, demoKinds[k]!])),
    workerId: values.id,
    leaseMs: Number(values.lease) * 1000,
    concurrency: Math.max(1, Number(values.concurrency) || 1),
    signal: stop.signal,
    graceMs: seconds(values.grace, "--grace") * 1000,
    log,
  });
  log(`worker ${values.id} stopped`);
  await tracing?.shutdown();
  // A handler abandoned after the grace period may still hold timers.
  process.exit(0);
}

function seconds(text: string, flag: string): number {
  const n = Number(text);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`${flag} must be a positive number of seconds, got ${JSON.stringify(text)}`);
  return n;
}

async function mintWorkerToken(keyId: string | undefined, keysFile: string | undefined, lifetimeSec: number): Promise<string> {
  const keys = loadKeyStore(keysFile ?? process.env.ANVIL_KEYS_FILE ?? "./.anvil/service-accounts.json", false);
  const key = keyId ? keys.get(keyId) : keys.values().next().value;
  if (!key) throw new Error(`no key ${keyId ?? ""} in the keys file; pass --token or --key`);
  return new SignJWT({ tenant: key.tenant, roles: ["worker"] })
    .setProtectedHeader({ alg: "HS256", kid: key.keyId, typ: "JWT" })
    .setSubject(`worker:${hostname()}`)
    .setIssuedAt()
    .setExpirationTime(`${Math.max(1, Math.round(lifetimeSec))}s`)
    .sign(key.secretBytes);
}

main().catch((err: unknown) => {
  process.stderr.write(`worker failed: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
