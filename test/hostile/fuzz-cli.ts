// `npm run fuzz`: the fuzz property for as long as FUZZ_MINUTES says (default
// 20), with a new seed per round, against a gateway in its own process on
// PostgreSQL when TEST_DATABASE_URL (or DATABASE_URL) is set, else PGlite.
// Prints the number of requests sent and, for a failure, the seed and path
// that replay it: FUZZ_SEED=<seed> FUZZ_PATH=<path> npm run fuzz.
import { startGatewayProcess } from "../support/gateway-process.js";
import { formatReport, runFuzz } from "./support/fuzz-run.js";

const minutes = Number(process.env.FUZZ_MINUTES ?? 20);
const replaySeed = process.env.FUZZ_SEED === undefined ? undefined : Number(process.env.FUZZ_SEED);
const replayPath = process.env.FUZZ_PATH;
process.env.TEST_DATABASE_URL ??= process.env.DATABASE_URL;
const kind = process.env.TEST_DATABASE_URL ? "postgres" : "pglite";
const deadline = Date.now() + minutes * 60_000;

const gateway = await startGatewayProcess(kind);
let total = 0;
let failed = false;
let round = 0;
try {
  do {
    const seed = replaySeed ?? (Date.now() ^ (round * 0x9e3779b1)) >>> 0;
    const report = await runFuzz(gateway, {
      seed,
      // A round is large enough for shrinking to mean something, small enough to report often.
      numRuns: replayPath ? 1 : 2_000,
      ...(replayPath ? { path: replayPath } : {}),
      timeLimitMs: Math.max(1_000, deadline - Date.now()),
      bounds: { responseMs: 5_000, checkEventLoop: kind === "postgres", rssGrowthBytes: 150 * 2 ** 20 },
    });
    total += report.requests;
    round++;
    console.log(`[${kind} round ${round}, seed ${seed}] ${formatReport(report)}`);
    if (report.failure) failed = true;
  } while (!failed && replaySeed === undefined && Date.now() < deadline && gateway.alive());
} finally {
  await gateway.close();
}
console.log(`fuzz: ${total} requests in total over ${round} rounds on ${kind}; ${failed ? "FAILED" : "no failure"}`);
process.exit(failed ? 1 : 0);
