import { randomUUID } from "node:crypto";
import { type Kysely, sql } from "kysely";
import pg from "pg";
import { expect } from "vitest";
import { AbortedError, NotFoundError } from "../../src/shared/errors.js";

// What the repository tests of the versioned resources (users, workflows,
// agents, IPAs, webhooks) share: a tenant of the test's own, the same rows
// created in a twin tenant beside it that nothing done in the first may touch,
// and the rules every such repository keeps alike (versioned writes, keyset
// pages). Each test file keeps what is its resource's own.

/** Runs `work` on a repository bound to `tenant`, in a transaction of its own. */
export type InTenant<R> = <T>(tenant: string, work: (repository: R) => Promise<T>) => Promise<T>;

/** A tenant no other test uses. */
export const newTenant = (): string => `tenant-${randomUUID().slice(0, 8)}`;

/** The twin of `tenant`: holds the same rows, and nothing done in `tenant` may touch them. */
export const twinOf = (tenant: string): string => `${tenant}-other`;

/** What `p` rejected with, or undefined when it resolved. */
export const failure = (p: Promise<unknown>): Promise<unknown> => p.then(() => undefined, (e: unknown) => e);

/**
 * `twin(tenant, input)` creates `input` in the twin tenant first, then in
 * `tenant`: `mine` is the caller's row, `other` the one it must leave alone.
 */
export function twinCreator<R, New, Row>(inTenant: InTenant<R>, create: (repository: R, input: New) => Promise<Row>) {
  return async (tenant: string, input: New): Promise<{ mine: Row; other: Row }> => {
    const other = await inTenant(twinOf(tenant), (r) => create(r, input));
    return { mine: await inTenant(tenant, (r) => create(r, input)), other };
  };
}

/** The repository methods whose versioned writes expectVersionedWrites checks. */
export interface VersionedRepository<Row> {
  get(id: string): Promise<Row>;
  update(id: string, patch: { displayName: string }, expectedVersion: number | undefined): Promise<Row>;
  delete(id: string, expectedVersion: number | undefined): Promise<unknown>;
}

/**
 * Updates and deletes `mine` (at version 1, made in `tenant` beside its twin)
 * at the expected version only: ABORTED when stale, NOT_FOUND from the twin
 * tenant, which changes nothing, and NOT_FOUND once deleted. `resource` is
 * the name NOT_FOUND gives. Returns nothing; the caller checks its twin row.
 */
export async function expectVersionedWrites<Row extends { id: string }>(
  inTenant: InTenant<VersionedRepository<Row>>,
  tenant: string,
  mine: Row,
  resource: string,
): Promise<void> {
  const { id } = mine;
  expect(await inTenant(tenant, (r) => r.update(id, { displayName: "v2" }, 1))).toMatchObject({ displayName: "v2", version: 2 });
  expect(await failure(inTenant(tenant, (r) => r.update(id, { displayName: "stale" }, 1)))).toBeInstanceOf(AbortedError);
  expect(await failure(inTenant(tenant, (r) => r.delete(id, 1)))).toBeInstanceOf(AbortedError);
  for (const write of [(r: VersionedRepository<Row>) => r.update(id, { displayName: "theirs" }, undefined), (r: VersionedRepository<Row>) => r.delete(id, undefined)]) {
    const refused = await failure(inTenant(twinOf(tenant), write));
    expect(refused).toBeInstanceOf(NotFoundError);
    expect(refused).toMatchObject({ resource, id });
  }
  expect(await inTenant(tenant, (r) => r.get(id))).toMatchObject({ displayName: "v2", version: 2 });
  await inTenant(tenant, (r) => r.delete(id, 2));
  expect(await failure(inTenant(tenant, (r) => r.get(id)))).toBeInstanceOf(NotFoundError);
  expect(await failure(inTenant(tenant, (r) => r.delete(id, undefined)))).toBeInstanceOf(NotFoundError);
}

/** The repository methods whose pages expectOldestFirstPages checks. */
export interface ListingRepository<Row> {
  get(id: string): Promise<Row>;
  list(limit: number, after: readonly unknown[] | undefined): Promise<readonly Row[]>;
}

/**
 * Lists `rows` (three rows of `tenant` in `table`, each with a twin) oldest
 * first, the id breaking ties, in pages after a keyset position. Their
 * creation times are set apart here from one fixed time (the last two tied)
 * rather than left to the clock's resolution.
 */
export async function expectOldestFirstPages<Row extends { id: string; createTime: Date }>(
  db: Kysely<any>,
  table: string,
  inTenant: InTenant<ListingRepository<Row>>,
  tenant: string,
  [a, b, c]: readonly [Row, Row, Row],
): Promise<void> {
  const base = new Date().toISOString();
  for (const [id, seconds] of [[a.id, 30], [b.id, 10], [c.id, 10]] as const) {
    await sql`update ${sql.table(table)} set create_time = ${base}::timestamptz - make_interval(secs => ${seconds}) where tenant_id = ${tenant} and id = ${id}`.execute(db);
  }
  const [first, ...tied] = [a.id, ...[b.id, c.id].sort()] as [string, string, string];
  const list = async (limit: number, after?: readonly unknown[]) => (await inTenant(tenant, (r) => r.list(limit, after))).map((row) => row.id);
  expect(await list(10)).toEqual([first, ...tied]);
  expect(await list(2)).toEqual([first, tied[0]]);
  const second = await inTenant(tenant, (r) => r.get(tied[0]));
  expect(await list(10, [second.createTime, second.id])).toEqual([tied[1]]);
  // A listed row is the row as get reads it, every field.
  expect((await inTenant(tenant, (r) => r.list(1, undefined)))[0]).toEqual(await inTenant(tenant, (r) => r.get(first)));
}

/** Which row locks another session could still take on a row: `for update` and `for share`. */
export interface LocksLeft {
  update: boolean;
  share: boolean;
}

/**
 * Calls `check` with `whileHeld`, which runs `hold` in a transaction of
 * `tenant` and says, before it ends, which locks a second session could still
 * take on the row `id` of `table` (PostgreSQL only: PGlite has one session).
 */
export async function probingRowLocks<R>(
  url: string,
  table: string,
  inTenant: InTenant<R>,
  tenant: string,
  id: string,
  check: (whileHeld: (hold: (repository: R) => Promise<unknown>) => Promise<LocksLeft>) => Promise<void>,
): Promise<void> {
  const prober = new pg.Client({ connectionString: url });
  await prober.connect();
  try {
    const othersCould = async (mode: "update" | "share") => {
      const { rows } = await prober.query(`select id from ${table} where tenant_id = $1 and id = $2 for ${mode} skip locked`, [tenant, id]);
      return rows.length === 1;
    };
    await check((hold) =>
      inTenant(tenant, async (repository) => {
        await hold(repository);
        return { update: await othersCould("update"), share: await othersCould("share") };
      }),
    );
  } finally {
    await prober.end();
  }
}
