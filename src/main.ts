import pino from "pino";
import { loadConfig } from "./config.js";
import { build } from "./server/build.js";
import { listen } from "./server/listener.js";
import { Shutdown } from "./server/shutdown.js";
import { listenMetrics } from "./metrics/metrics-server.js";
import { describeErrorChain } from "./shared/error-chain.js";
import { startTracing } from "./tracing/tracing.js";

/** Starts the gateway: configuration → build() → listen. The only file that listens. */
async function main(): Promise<void> {
  const config = loadConfig();
  const log = pino({ level: config.logLevel });
  // Before build(): only then do the transports and the database trace.
  const tracing = await startTracing("anvil");
  if (tracing) log.info("exporting traces over OTLP");
  const app = await build(config, log);
  const server = await listen(app.handle, { ...config, log }, app.upgrade);
  const metricsServer = config.metricsPort === undefined ? undefined : await listenMetrics(app.metricsRoute, config.metricsPort, config.host);
  if (metricsServer) log.info({ port: metricsServer.port }, "metrics listening");
  const base = `${config.tlsCert ? "https" : "http"}://localhost:${server.port}`;
  const firstKey = app.keys.values().next().value;
  log.info({ port: server.port, database: app.database.kind }, "anvil listening");
  process.stdout.write(
    [
      "",
      `Anvil is listening on ${base} (gRPC, gRPC-Web, Connect; HTTP/1.1 and HTTP/2) — database: ${app.database.kind}`,
      "Mint a token and call it:",
      `  TOKEN=$(npm run -s token -- --key ${firstKey?.keyId ?? "<key>"} --sub me --ttl 1h)`,
      `  curl -s ${base}/anvil.users.v1.UserService/ListUsers -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' -d '{}'`,
      `Or open the console at ${base}/console and paste the token there.`,
      "",
    ].join("\n") + "\n",
  );
  new Shutdown(app, metricsServer ? [server, metricsServer] : [server], {
    ...config.shutdown,
    log,
    // Last, so the spans of the drain itself are exported too.
    flush: async () => void (await tracing?.shutdown()),
  }).listen();
  // The conventional "re-read your configuration": the keys file, at once.
  process.on("SIGHUP", () => void app.keys.reload());
}

main().catch((err: unknown) => {
  // Why first (the whole cause chain: the database does not exist, the
  // connection was refused…), then where, for whoever debugs the gateway.
  const where = err instanceof Error && err.stack ? `\n\n${err.stack}` : "";
  process.stderr.write(`anvil failed to start: ${describeErrorChain(err)}${where}\n`);
  process.exit(1);
});
