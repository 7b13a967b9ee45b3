import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Call } from "../protocol/calls.js";
import { loadCore, pinned } from "../processes/pinning.js";
import { type LoadResult, quantile } from "./load-result.js";

/** Options of runH2load. */
export interface H2loadOptions {
  readonly baseUrl: string;
  readonly call: Call;
  readonly seconds: number;
  /**
   * Send exactly this many requests instead of running for `seconds`, so
   * every request sent is answered or counted as failed (used with 1,000
   * streams in flight, where a timed window would cut the last ones off).
   */
  readonly requests?: number;
  /** HTTP/2 connections (h2load -c). */
  readonly connections: number;
  /** Streams in flight per connection (h2load -m). */
  readonly streams: number;
  /** Length of one correct answer's body, from the sample check; answers shorter on average mean errors. */
  readonly expectedBodyBytes?: number;
}

/**
 * Drives the call with h2load over cleartext HTTP/2 (prior knowledge), with
 * the request body from a file — for gRPC the real 5-byte-enveloped
 * message — and the call's headers (content-type, te: trailers,
 * authorization). Latency percentiles come from h2load's per-request log.
 *
 * h2load cannot read gRPC trailers, so a gRPC error would look like a 200.
 * Two guards: the sample checks around the run (see client.ts), and the
 * body bytes h2load counted, which must add up to one correct answer per
 * request (an error answer has no body).
 */
export async function runH2load(o: H2loadOptions): Promise<LoadResult> {
  if (o.call.unique) throw new Error(`${o.call.name} needs a new body per request, which h2load cannot send`);
  const dir = mkdtempSync(join(tmpdir(), "anvil-h2load-"));
  try {
    const log = join(dir, "requests.log");
    const args = [...(o.requests ? ["-n", String(o.requests)] : ["-D", String(o.seconds)]), "-c", String(o.connections), "-m", String(o.streams), "-t", "1", `--log-file=${log}`];
    for (const [name, value] of Object.entries(o.call.headers)) args.push("-H", `${name}: ${value}`);
    const body = o.call.body();
    if (body !== undefined) {
      const file = join(dir, "body.bin");
      writeFileSync(file, body);
      args.push("-d", file);
    }
    args.push(`${o.baseUrl}${o.call.path}`);
    const output = await run(...pinned(loadCore, "h2load", args));
    return parse(output, readFileSync(log, "utf8"), o);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function parse(output: string, log: string, o: H2loadOptions): LoadResult {
  const num = (re: RegExp) => Number(re.exec(output)?.[1] ?? Number.NaN);
  // h2load prints short runs in ms ("finished in 412.3ms").
  const finished = /finished in ([\d.]+)(ms|s),/.exec(output);
  const seconds = finished ? Number(finished[1]) / (finished[2] === "ms" ? 1000 : 1) : Number.NaN;
  const done = num(/requests: \d+ total, \d+ started, (\d+) done/);
  const succeeded = num(/(\d+) succeeded/);
  const failed = num(/(\d+) failed/) + num(/(\d+) errored/) + num(/(\d+) timeout/);
  const non2xx = num(/status codes: \d+ 2xx, (\d+) 3xx/) + num(/(\d+) 4xx/) + num(/(\d+) 5xx/);
  const dataBytes = num(/traffic: .*?, .*?headers.*?, [\d.]+\w*B \((\d+)\) data/);
  if (!Number.isFinite(done)) throw new Error(`could not parse h2load output:\n${output}`);
  const notes: string[] = [];
  let errors = failed + non2xx;
  if (o.requests && done < o.requests) {
    errors += o.requests - done;
    notes.push(`${o.requests - done} of ${o.requests} requests never completed`);
  }
  if (done === 0) notes.push("no request completed in the measured window");
  if (o.expectedBodyBytes && Number.isFinite(dataBytes) && succeeded > 0) {
    const missing = succeeded * o.expectedBodyBytes - dataBytes;
    // More than 1% short: some answers had no (or a shorter) body, i.e. were errors.
    if (missing > 0.01 * succeeded * o.expectedBodyBytes) {
      const bad = Math.ceil(missing / o.expectedBodyBytes);
      errors += bad;
      notes.push(`~${bad} answers lacked a full body (${dataBytes} of ${succeeded * o.expectedBodyBytes} bytes)`);
    }
  }
  const latencies = new Float64Array(
    log
      .split("\n")
      .filter(Boolean)
      .map((line) => Number(line.split("\t")[2]) / 1000),
  ).sort();
  return {
    requests: done,
    seconds,
    rps: done / seconds,
    p50Ms: quantile(latencies, 0.5),
    p99Ms: quantile(latencies, 0.99),
    errors,
    checkedInRun: 0,
    notes,
  };
}

function run(command: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ["ignore", "pipe", "pipe"] });
    // A server that stops answering must not hang the whole bench.
    const timer = setTimeout(() => child.kill("SIGKILL"), 180_000);
    child.once("exit", () => clearTimeout(timer));
    let out = "";
    child.stdout.on("data", (c: Buffer) => (out += c.toString()));
    child.stderr.on("data", (c: Buffer) => (out += c.toString()));
    child.once("error", reject);
    child.once("exit", (code) => (code === 0 ? resolve(out) : reject(new Error(`h2load exited ${code}: ${out.slice(-2000)}`))));
  });
}
