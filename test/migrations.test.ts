import { readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { sql } from "kysely";
import pino from "pino";
import { describe, expect, it } from "vitest";
import { UserService } from "../gen/anvil/users/v1/users_pb.js";
import { migrations } from "../migrations/index.js";
import { type DatabaseHandle, openDatabase } from "../src/db/database.js";
import { hasPendingMigrations, migrateToLatest } from "../src/db/migrator.js";
import { clientFor } from "./support/clients.js";
import { createTestDatabase, databaseKinds, type TestDatabase } from "./support/databases.js";
import { startServer } from "./support/server.js";

const migrationsDir = join(dirname(fileURLToPath(import.meta.url)), "..", "migrations");
const silent = pino({ level: "silent" });

function open(db: TestDatabase): Promise<DatabaseHandle> {
  return openDatabase(
    db.url ? { kind: "postgres", url: db.url, poolSize: 2, statementTimeoutMs: 30_000 } : { kind: "pglite", dataDir: "memory://" },
    silent,
  );
}

/** What the schema looks like: every column of every table, and the applied migrations. */
async function schemaOf(handle: DatabaseHandle) {
  const columns = await sql<{ table_name: string; column_name: string; data_type: string }>`
    select table_name, column_name, data_type from information_schema.columns
    where table_schema = 'public' order by table_name, column_name`.execute(handle.db);
  const applied = await sql<{ name: string }>`select name from kysely_migration order by name`.execute(handle.db);
  const settings = await sql<{ name: string; value: string }>`select name, value from anvil_settings order by name`.execute(handle.db);
  return { columns: columns.rows, applied: applied.rows.map((r) => r.name), settings: settings.rows };
}

describe("migrations/index.ts", () => {
  it("lists exactly the migration files of the folder, in name order", async () => {
    const files = readdirSync(migrationsDir)
      .filter((f) => f.endsWith(".ts") && f !== "index.ts")
      .map((f) => f.slice(0, -".ts".length))
      .sort();
    expect(files.length).toBeGreaterThan(0);
    expect(Object.keys(migrations)).toEqual(files);
    for (const name of files) {
      expect(name).toMatch(/^\d{14}_[a-z0-9_]+$/);
      // The entry is that file's module, not another one registered under its name.
      const module = await import(/* @vite-ignore */ pathToFileURL(join(migrationsDir, `${name}.ts`)).href);
      expect(migrations[name]!.up).toBe(module.up);
      expect(migrations[name]!.down).toBe(module.down);
    }
  });
});

describe.each(databaseKinds)("migrating on %s", (kind) => {
  it("applies every migration once; migrating again is a no-op", async () => {
    const db = await createTestDatabase(kind);
    const handle = await open(db);
    try {
      expect(await hasPendingMigrations(handle.db)).toBe(true);
      expect(await migrateToLatest(handle.db)).toEqual(Object.keys(migrations));
      expect(await hasPendingMigrations(handle.db)).toBe(false);
      const schema = await schemaOf(handle);
      expect(schema.applied).toEqual(Object.keys(migrations));
      expect(await migrateToLatest(handle.db)).toEqual([]);
      // Nothing re-ran: same tables, same columns, and the page-token key was not regenerated.
      expect(await schemaOf(handle)).toEqual(schema);
    } finally {
      await handle.close();
      await db.drop();
    }
  });
});

describe.skipIf(!databaseKinds.includes("postgres"))("instances starting together on one fresh PostgreSQL database", () => {
  it("both migrate successfully and the schema is applied once", async () => {
    // A few rounds: the race is in the first moments, on a database with no tables at all.
    for (let round = 0; round < 3; round++) {
      const db = await createTestDatabase("postgres");
      const a = await open(db);
      const b = await open(db);
      try {
        const [ranA, ranB] = await Promise.all([migrateToLatest(a.db), migrateToLatest(b.db)]);
        // Each migration ran in exactly one of the two instances.
        expect([...ranA, ...ranB].sort()).toEqual(Object.keys(migrations));
        const schema = await schemaOf(a);
        expect(schema.applied).toEqual(Object.keys(migrations));
        expect(schema.settings.map((s) => s.name)).toEqual(["page_token_key"]);
        expect(await schemaOf(b)).toEqual(schema);
      } finally {
        await a.close();
        await b.close();
        await db.drop();
      }
    }
  });

  it("two gateways built at once on one database both serve, with one shared page-token key", async () => {
    const db = await createTestDatabase("postgres");
    try {
      const [one, two] = await Promise.all([
        startServer("postgres", { database: db }),
        startServer("postgres", { database: db }),
      ]);
      try {
        const token = await one.token();
        const clientOne = clientFor(UserService, "connect-json", one.baseUrl, token);
        // The keys files differ per server; mint the second server's token from its own keys.
        const clientTwo = clientFor(UserService, "connect-json", two.baseUrl, await two.token());
        for (let i = 0; i < 3; i++) await clientOne.createUser({ user: { email: `twin-${i}@example.com` } });
        const page = await clientOne.listUsers({ pageSize: 1 });
        expect(page.nextPageToken).not.toBe("");
        // A page token issued by one instance continues on the other: both read the one key the migration created.
        const next = await clientTwo.listUsers({ pageSize: 1, pageToken: page.nextPageToken });
        expect(next.users[0]!.id).not.toBe(page.users[0]!.id);
      } finally {
        await one.close();
        await two.close();
      }
    } finally {
      await db.drop();
    }
  });
});
