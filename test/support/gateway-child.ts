// A gateway in a process of its own, for tests that measure what the
// gateway costs: its event loop and memory must not be shared with the test
// runner, which would otherwise measure itself. Started by
// gateway-process.ts through fork(); builds and listens exactly as main.ts
// does (and stops as it does), then answers the parent's questions over IPC.
import { readFileSync, writeFileSync } from "node:fs";
import { monitorEventLoopDelay } from "node:perf_hooks";
import pino from "pino";
import { loadConfig } from "../../src/config.js";
import { build } from "../../src/server/build.js";
import { listen } from "../../src/server/listener.js";
import { Shutdown } from "../../src/server/shutdown.js";
import type { ChildReply, ChildRequest } from "./gateway-process.js";
import { startTracing } from "../../src/tracing/tracing.js";

async function main(): Promise<void> {
  const config = loadConfig(process.env);
  // As main.ts: traces are exported when the environment names an OTLP endpoint.
  const tracing = await startTracing("anvil");
  const app = await build(config, pino({ level: config.logLevel }));
  const server = await listen(app.handle, { ...config, log: app.log }, app.upgrade);
  // 5 ms resolution: a block shorter than that is not worth reporting, and a
  // finer timer would itself load the loop it measures.
  const delay = monitorEventLoopDelay({ resolution: 5 });
  delay.enable();
  const send = (reply: ChildReply) => process.send?.(reply);
  process.on("message", (m: ChildRequest) => {
    switch (m.type) {
      case "stats":
        send({
          type: "stats",
          id: m.id,
          // The histogram counts the delay past the resolution; the largest is
          // the longest time the loop was busy at once (within one tick).
          maxDelayMs: delay.max / 1e6,
          p99DelayMs: delay.percentile(99) / 1e6,
          rssBytes: process.memoryUsage().rss,
          // The kernel's high-water mark: a spike between two samples shows
          // here even after the memory was given back.
          peakRssBytes: peakRss(),
          cpuMicros: process.cpuUsage().user + process.cpuUsage().system,
          heapUsedBytes: process.memoryUsage().heapUsed,
        });
        break;
      case "reset":
        delay.reset();
        send({ type: "reset", id: m.id });
        break;
      case "resetPeak":
        send({ type: "resetPeak", id: m.id, reset: resetPeakRss() });
        break;
      case "gc":
        (globalThis as { gc?: () => void }).gc?.();
        send({ type: "gc", id: m.id });
        break;
    }
  });
  // Stops as main.ts does (the drain test signals this process); a parent
  // that goes away counts as a first signal.
  const shutdown = new Shutdown(app, [server], { ...config.shutdown, log: app.log, flush: async () => void (await tracing?.shutdown()) });
  shutdown.listen();
  process.on("SIGHUP", () => void app.keys.reload());
  process.on("disconnect", () => shutdown.signal("disconnect"));
  send({ type: "ready", port: server.port });
}

/** VmHWM, the high-water mark resetPeakRss lowers; getrusage's maxRSS (never lowered) where /proc is missing. */
function peakRss(): number {
  try {
    const kib = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync("/proc/self/status", "latin1"))?.[1];
    if (kib !== undefined) return Number(kib) * 1024;
  } catch {
    // Not Linux.
  }
  return process.resourceUsage().maxRSS * 1024;
}

/** Sets the high-water mark to the current RSS (Linux ≥ 4.0: `5` to clear_refs); false where not allowed. */
function resetPeakRss(): boolean {
  try {
    writeFileSync("/proc/self/clear_refs", "5");
    return true;
  } catch {
    return false;
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`gateway child failed to start: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
