// The fuzzer's loop: fast-check draws a method, a protocol and a request
// from the service descriptors, sends it to a gateway running in its own
// process, and checks what the gateway may never do whatever it is sent —
// answer INTERNAL or a 5xx, take longer than a bound, block its event loop,
// die, or keep the memory afterwards. Used by test/hostile/fuzz.test.ts
// (pinned seed and count) and test/hostile/fuzz-cli.ts (`npm run fuzz`).
import { connect as http2Connect, type ClientHttp2Session } from "node:http2";
import type { DescMethod } from "@bufbuild/protobuf";
import fc from "fast-check";
import { buildRestRoutes, type RestRoute } from "../../../src/server/rest/rest-routes.js";
import { apiServices } from "../../../src/server/services.js";
import type { GatewayProcess } from "../../support/gateway-process.js";
import { messageArbitrary } from "./request-values.js";
import { type Damage, damages, KnownIds, send, type WireOutcome, type WireProtocol, wireProtocols } from "./wire.js";

/** Bounds the gateway must keep. */
export interface FuzzBounds {
  /** Longest answer, in ms. */
  readonly responseMs: number;
  /** Whether event-loop delay is checked (only meaningful on PostgreSQL: PGlite runs on the gateway's thread). */
  readonly checkEventLoop: boolean;
  /** RSS may end this much above its warmed-up baseline. */
  readonly rssGrowthBytes: number;
}

/** The properties the fuzzer checks. */
export type FuzzProperty =
  /** INTERNAL, UNKNOWN or DATA_LOSS, or an HTTP 5xx other than 503 (UNAVAILABLE). */
  | "code"
  /** No answer within the time bound. */
  | "slow"
  /** The event loop was blocked longer than 50 ms + 20 ms per MiB of body. */
  | "event-loop"
  /** The answer is not a well-formed response of its protocol (no status, dropped connection). */
  | "protocol"
  /** A value no rule allows (NUL, invalid UTF-8, past a declared limit) was accepted. */
  | "accepted-invalid";

/** One drawn request. */
export interface FuzzCase {
  readonly method: DescMethod;
  readonly protocol: WireProtocol;
  readonly json: unknown;
  readonly tags: readonly string[];
  readonly route: RestRoute | undefined;
  readonly principal: "admin" | "viewer" | "none" | "forged";
  readonly timeout: string | undefined;
  readonly damage: Damage;
}

/** A broken property, with what it takes to see it again. */
export interface FuzzFailure {
  readonly property: FuzzProperty | "crash" | "memory";
  readonly method: string;
  readonly protocol: string;
  readonly tags: readonly string[];
  readonly outcome?: WireOutcome;
  readonly blockMs?: number;
  readonly message: string;
}

/** What a run did. */
export interface FuzzReport {
  readonly requests: number;
  readonly byCode: Record<string, number>;
  /** fast-check's verdict: the failing case, its seed and path, when a property broke. */
  readonly failure?: { readonly seed: number; readonly path: string | undefined; readonly failure: FuzzFailure; readonly shrunk: string };
  readonly rss: { readonly baseline: number; readonly after: number };
  /** The longest block of the event loop, in ms (see `blockOf`). */
  readonly worstDelayMs: number;
  /** The request that blocked the loop longest. */
  readonly worstDelayCase: string;
}

const methods = apiServices.flatMap((s) => s.methods);
const routes = buildRestRoutes(apiServices).routes;

/** The arbitrary of requests: every method of every API service, every protocol, every field. */
export function fuzzCaseArbitrary(): fc.Arbitrary<FuzzCase> {
  return fc.constantFrom(...methods).chain((method) => {
    const methodRoutes = routes.filter((r) => r.method === method);
    return fc
      .record({
        protocol: fc.constantFrom(...wireProtocols),
        body: messageArbitrary(method.input),
        route: fc.constantFrom(...(methodRoutes.length ? methodRoutes : [undefined])),
        principal: fc.oneof({ weight: 12, arbitrary: fc.constant("admin" as const) }, { weight: 1, arbitrary: fc.constantFrom("viewer" as const, "none" as const, "forged" as const) }),
        timeout: fc.oneof(
          { weight: 10, arbitrary: fc.constant(undefined) },
          // Header text as sent: tiny, ordinary, past what timers accept (~24.8 days), and not a number.
          { weight: 1, arbitrary: fc.constantFrom("1", "2000", "0", "9999999999", "99999999", "-5", "1.5", "abc") },
        ),
        damage: fc.oneof({ weight: 12, arbitrary: fc.constant("none" as Damage) }, { weight: 1, arbitrary: fc.constantFrom(...damages) }),
      })
      .map(({ protocol, body, route, principal, timeout, damage }) => ({
        method,
        protocol: protocol === "rest" && !route ? "connect-json" : protocol,
        json: body.json,
        tags: [
          ...body.tags,
          ...(principal !== "admin" ? [`principal:${principal}`] : []),
          ...(timeout !== undefined ? [`deadline:${Number(timeout) > 2_147_483_647 / 1000 ? "huge" : timeout}`] : []),
          ...(damage !== "none" ? [`damage:${damage}`] : []),
        ],
        route,
        principal,
        timeout,
        damage,
      }));
  });
}

// Input classes no field may accept, and those that survive each encoding:
// the binary form cannot carry a lone surrogate (it is encoded as U+FFFD) or
// a number past its type.
const refusedEverywhere = ["string:nul", "string:invalid-utf8", "string:over-max", "list:over-max", "number:below-min", "number:over-max"];
const refusedInJson = [...refusedEverywhere, "string:lone-surrogate"];
// Classes after which the binary encoder may drop a whole top-level field
// (and the bad value in it): see encodeBinary.
const droppedInBinary = /(^|:)(wrong-type|null|number:out-of-range|number:fraction|number:huge|enum:unknown-name|enum:out-of-range|timestamp:bad|duration:bad|bytes:bad-base64|oneof:multiple|mask:bad)$/;

/**
 * The tag of a value in `c` that the gateway must refuse, if there is one it
 * will certainly see: not under a field the server may ignore, not in an
 * update (which checks only masked paths), and carried by the encoding.
 */
function mustBeRefused(c: FuzzCase): string | undefined {
  if (c.method.input.fields.some((f) => f.name === "update_mask")) return undefined;
  const json = c.protocol === "connect-json" || c.protocol === "rest";
  // A damaged body is not the drawn request: `deep` replaces a JSON body, and in binary it appends field 1 as a
  // message, which a scalar field 1 reads as packed values (the last one wins: ListUsers' page_size -1 became a
  // valid size); truncation can cut the invalid value away. Only an intact body must be refused for what it holds.
  if (c.damage !== "none") return undefined;
  if (!json && c.tags.some((t) => droppedInBinary.test(t))) return undefined;
  const classes = json ? refusedInJson : refusedEverywhere;
  return c.tags.find((t) => {
    if (t.includes("~")) return false;
    // REST without a body sends only top-level scalars, in the path and query.
    if (c.protocol === "rest" && c.route?.body.kind === "none" && t.split(":").length > 3) return false;
    return classes.some((k) => t.endsWith(`:${k}`));
  });
}

/** Whether a method may rightly hold a request open: a stream, or a long poll (it takes a wait as a Duration). */
function waits(c: FuzzCase): boolean {
  return c.method.methodKind === "server_streaming" || c.method.input.fields.some((f) => f.message?.typeName === "google.protobuf.Duration");
}

/** Whether the caller's own deadline ends a wait well within the bound. */
function deadlineShort(c: FuzzCase): boolean {
  return c.timeout !== undefined && Number(c.timeout) >= 0 && Number(c.timeout) < 1_000;
}

/** Prints a case so a person can read what was sent. */
export function describeCase(c: FuzzCase): string {
  const body = JSON.stringify(c.json) ?? "";
  return `${c.method.parent.typeName}/${c.method.name} over ${c.protocol}${c.route ? ` (${c.route.httpMethod} ${c.route.template.source})` : ""} as ${c.principal}, tags [${c.tags.join(", ")}], timeout ${c.timeout ?? "none"}, damage ${c.damage}, body ${body.length > 300 ? `${body.slice(0, 300)}… (${body.length} chars)` : body}`;
}

/** Options of runFuzz. */
export interface FuzzOptions {
  readonly seed: number;
  readonly numRuns: number;
  /** Replays one case of an earlier failure (fast-check's counterexample path). */
  readonly path?: string;
  readonly bounds: FuzzBounds;
  /** Stop drawing new cases after this many ms (fast-check's interruptAfterTimeLimit). */
  readonly timeLimitMs?: number;
  /** Called after each request (progress output). */
  readonly onRequest?: (count: number) => void;
}

/**
 * Runs the fuzzer against `gateway`: a warm-up, the property over
 * `numRuns` cases (shrunk to the smallest failing one if one fails), then
 * the process and memory checks.
 */
export async function runFuzz(gateway: GatewayProcess, options: FuzzOptions): Promise<FuzzReport> {
  const tokens = {
    admin: `Bearer ${await gateway.token("acme-admin", { roles: ["admin", "worker", "analyzer"] })}`,
    viewer: `Bearer ${await gateway.token("acme-viewer")}`,
    forged: `Bearer ${await gateway.token("acme-admin", { secret: new Uint8Array(32) })}`,
  };
  const ids = new KnownIds();
  let session: ClientHttp2Session | undefined;
  const h2 = () => {
    if (!session || session.closed || session.destroyed) {
      session = http2Connect(`http://127.0.0.1:${gateway.port}`);
      session.on("error", () => {});
    }
    return session;
  };
  const byCode: Record<string, number> = {};
  let requests = 0;
  let worstDelayMs = 0;
  let worstDelayCase = "";

  // Streams and long polls may rightly stay open: they are cut sooner, and not reported slow (see checkOutcome).
  const sendCase = (c: FuzzCase) =>
    send(
      gateway.port,
      {
        method: c.method,
        protocol: c.protocol,
        json: c.json,
        ...(c.route ? { route: c.route } : {}),
        ...(c.principal !== "none" ? { authorization: tokens[c.principal] } : {}),
        ...(c.timeout !== undefined ? { timeout: c.timeout } : {}),
        damage: c.damage,
      },
      ids,
      waits(c) && !deadlineShort(c) ? Math.min(1_500, options.bounds.responseMs) : options.bounds.responseMs,
      h2,
    );

  // One request, measured: the event-loop window covers exactly it.
  const measured = async (c: FuzzCase) => {
    await gateway.reset();
    const before = await gateway.stats().catch(() => undefined);
    const outcome = await sendCase(c);
    const after = await gateway.stats().catch(() => undefined);
    requests++;
    options.onRequest?.(requests);
    byCode[outcome.code] = (byCode[outcome.code] ?? 0) + 1;
    return { outcome, blockMs: before && after ? blockOf(after.maxDelayMs, after.cpuMicros - before.cpuMicros) : undefined };
  };

  // Warm-up: JIT, pools and caches reach their steady size before the baseline.
  for (const c of fc.sample(fuzzCaseArbitrary().filter((x) => x.damage === "none"), { seed: options.seed ^ 0x5eed, numRuns: 40 })) await measured(c);
  await gateway.gc();
  const baseline = (await gateway.stats()).rssBytes;

  const property = fc.asyncProperty(fuzzCaseArbitrary(), async (c) => {
    const broken = await brokenProperties(c, await measured(c));
    for (const failure of broken) {
      // Timing is shared with other processes on a busy machine (a process
      // that is not scheduled shows as a blocked loop): a slow answer or a
      // blocked loop counts only if it happens on two replays too.
      if (failure.property === "slow" || failure.property === "event-loop") {
        let confirmed = true;
        for (let i = 0; i < 2 && confirmed; i++) {
          confirmed = (await brokenProperties(c, await measured(c))).some((f) => f.property === failure.property);
        }
        if (!confirmed) continue;
      }
      throw Object.assign(new Error(`${failure.property}: ${failure.message}`), { fuzzFailure: failure });
    }
  });

  const checkOutcome = (c: FuzzCase, o: WireOutcome, blockMs: number | undefined): FuzzFailure[] => {
    const base = { method: `${c.method.parent.typeName}/${c.method.name}`, protocol: c.protocol, tags: c.tags, outcome: o };
    const out: FuzzFailure[] = [];
    if (!gateway.alive()) return [{ ...base, property: "crash", message: `the gateway died\n${gateway.stderr()}` }];
    const deadlineSent = c.timeout !== undefined;
    // A stream, or a long poll (a method that takes a wait as a Duration),
    // may rightly stay open past the bound unless the caller's deadline is shorter.
    const streamLeftOpen = waits(c) && !deadlineShort(c) && (o.code === "client_timeout" || o.ms > options.bounds.responseMs);
    if (["internal", "unknown", "data_loss"].includes(o.code)) out.push({ ...base, property: "code", message: `answered ${o.code}: ${o.detail ?? ""}` });
    // 5xx is a server fault, except the statuses of codes that say something
    // true: UNAVAILABLE, DEADLINE_EXCEEDED when the caller set a deadline, and
    // UNIMPLEMENTED (501) for what is deliberately not served (streams over REST).
    else if (o.httpStatus >= 500 && o.code !== "unavailable" && o.code !== "unimplemented" && !(o.code === "deadline_exceeded" && deadlineSent)) {
      out.push({ ...base, property: "code", message: `HTTP ${o.httpStatus} (${o.code}): ${o.detail ?? ""}` });
    }
    if (o.code === "client_timeout" && !streamLeftOpen) out.push({ ...base, property: "slow", message: `no answer within ${options.bounds.responseMs} ms` });
    else if (o.ms > options.bounds.responseMs && !streamLeftOpen) out.push({ ...base, property: "slow", message: `answered after ${Math.round(o.ms)} ms` });
    if (/^(transport_error|no_status|missing_end_stream|http_2)/.test(o.code)) out.push({ ...base, property: "protocol", message: `${o.code} (HTTP ${o.httpStatus})` });
    if (o.code === "ok") {
      const refused = mustBeRefused(c);
      if (refused) out.push({ ...base, property: "accepted-invalid", message: `accepted ${refused}` });
    }
    if (options.bounds.checkEventLoop && blockMs !== undefined) {
      if (blockMs > worstDelayMs) {
        worstDelayMs = blockMs;
        worstDelayCase = describeCase(c).slice(0, 400);
      }
      const bound = 50 + (20 * o.bytes) / 2 ** 20;
      // Streams and long polls too: a warm gateway waiting 1.4 s in ClaimTask uses ~30 ms of CPU and
      // stalls its loop ≤16 ms (measured 2026-11-29); the 40–80 ms seen earlier were its JIT warming up.
      if (blockMs > bound) out.push({ ...base, property: "event-loop", blockMs, message: `event loop blocked ${Math.round(blockMs)} ms (bound ${Math.round(bound)} ms)` });
    }
    return out;
  };
  const brokenProperties = async (c: FuzzCase, r: { outcome: WireOutcome; blockMs: number | undefined }) => checkOutcome(c, r.outcome, r.blockMs);

  const details = await fc.check(property, {
    seed: options.seed,
    numRuns: options.numRuns,
    ...(options.path ? { path: options.path } : {}),
    ...(options.timeLimitMs ? { interruptAfterTimeLimit: options.timeLimitMs, markInterruptAsFailure: false } : {}),
  });
  session?.close();

  await gateway.gc();
  const after = gateway.alive() ? (await gateway.stats()).rssBytes : 0;
  let failure: FuzzReport["failure"];
  if (details.failed) {
    const error = (details as { errorInstance?: unknown }).errorInstance as ({ fuzzFailure?: FuzzFailure } & Error) | undefined;
    const f: FuzzFailure = error?.fuzzFailure ?? { property: "protocol", method: "?", protocol: "?", tags: [], message: String(error?.stack ?? error) };
    failure = { seed: details.seed, path: details.counterexamplePath ?? undefined, failure: f, shrunk: details.counterexample ? describeCase(details.counterexample[0]) : "" };
  } else if (!gateway.alive()) {
    failure = { seed: details.seed, path: undefined, failure: { property: "crash", method: "?", protocol: "?", tags: [], message: gateway.stderr() }, shrunk: "" };
  } else if (after - baseline > options.bounds.rssGrowthBytes) {
    failure = {
      seed: details.seed,
      path: undefined,
      failure: { property: "memory", method: "*", protocol: "*", tags: [], message: `RSS grew ${Math.round((after - baseline) / 2 ** 20)} MiB over the run (bound ${Math.round(options.bounds.rssGrowthBytes / 2 ** 20)} MiB)` },
      shrunk: "",
    };
  }
  return { requests, byCode, ...(failure ? { failure } : {}), rss: { baseline, after }, worstDelayMs, worstDelayCase };
}

/** A report as text: counts, known failures hit, and the failure with its seed and path. */
export function formatReport(r: FuzzReport): string {
  const lines = [
    `fuzz: ${r.requests} requests; codes ${Object.entries(r.byCode).sort((a, b) => b[1] - a[1]).map(([c, n]) => `${c}=${n}`).join(" ")}`,
    `rss ${Math.round(r.rss.baseline / 2 ** 20)} → ${Math.round(r.rss.after / 2 ** 20)} MiB; worst event-loop block ${Math.round(r.worstDelayMs)} ms${r.worstDelayCase ? ` by ${r.worstDelayCase}` : ""}`,
  ];
  if (r.failure) {
    lines.push(`FAILURE ${r.failure.failure.property}: ${r.failure.failure.method} over ${r.failure.failure.protocol}: ${r.failure.failure.message}`);
    lines.push(`  tags: ${r.failure.failure.tags.join(", ")}`);
    if (r.failure.shrunk) lines.push(`  smallest case: ${r.failure.shrunk}`);
    lines.push(`  reproduce: FUZZ_SEED=${r.failure.seed}${r.failure.path ? ` FUZZ_PATH=${r.failure.path}` : ""} npm run fuzz`);
  }
  return lines.join("\n");
}

/**
 * The longest time the gateway's event loop was busy at once during a
 * request: the delay histogram's maximum, but never more than the CPU time
 * the process used meanwhile. On a shared machine the gateway is taken off
 * its core mid-task, and the histogram counts that wait as a busy loop (at a
 * load of 14 on two cores a 10 ms task shows as 60-100 ms); a task cannot
 * have been busy for longer than the CPU it consumed. A super-linear cost
 * still shows in full: it burns the CPU it blocks for.
 */
export function blockOf(maxDelayMs: number, cpuMicros: number): number {
  return Math.min(maxDelayMs, cpuMicros / 1000);
}
