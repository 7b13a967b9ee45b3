import pino from "pino";
import { loadConfig } from "../../src/config.js";
import { build } from "../../src/server/build.js";
import { listen } from "../../src/server/listener.js";
import { serve } from "./serve.js";
import { startTracing } from "../../src/tracing/tracing.js";

/**
 * Anvil exactly as `npm start` runs it: build() with the full interceptor
 * chain, the keys file and PostgreSQL from the environment the runner sets
 * (DATABASE_URL, ANVIL_KEYS_FILE, LOG_LEVEL=warn), listen() on one port for
 * HTTP/1.1 and HTTP/2 — and, as main.ts, tracing when the environment
 * names an OTLP endpoint (the anvil-observed variants).
 */
serve("anvil", async (port) => {
  const config = loadConfig({ ...process.env, PORT: String(port), HOST: "127.0.0.1" });
  const tracing = await startTracing("anvil");
  const app = await build(config, pino({ level: config.logLevel }));
  const server = await listen(app.handle, config, app.upgrade);
  return {
    close: async () => {
      await server.close(100);
      await app.close();
      await tracing?.shutdown();
    },
  };
});
