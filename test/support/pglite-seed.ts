import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PGlite } from "@electric-sql/pglite";

/**
 * Vitest global setup: runs initdb once per test run and hands its data
 * directory to every embedded test database (ANVIL_PGLITE_SEED, inherited by
 * the test processes and the gateways they fork), which then starts from a
 * copy of it. initdb is most of an embedded gateway's start: about 3.5 of
 * 4 s on a quiet 2-core machine, over a minute at load 20, where it alone
 * outlasted a suite's beforeAll. The copy is a pristine cluster (no schema
 * of Anvil's: every gateway still migrates its own), so no database sees
 * another's rows.
 */
export default async function setup(): Promise<() => void> {
  const dir = mkdtempSync(join(tmpdir(), "anvil-pglite-seed-"));
  const pristine = await PGlite.create();
  try {
    const tarball = join(dir, "pristine.tar");
    writeFileSync(tarball, Buffer.from(await (await pristine.dumpDataDir("none")).arrayBuffer()));
    process.env.ANVIL_PGLITE_SEED = tarball;
  } finally {
    await pristine.close();
  }
  return () => rmSync(dir, { recursive: true, force: true });
}
