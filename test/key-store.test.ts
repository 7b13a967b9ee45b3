// The service-account keys file straight, over real files in a directory of
// the test's own (survivors of `npm run mutate` in src/auth: every gateway of
// the end-to-end suites loads a well-formed file while it starts, so what a
// malformed entry is told, and which change a reload reports, went unseen).
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, renameSync, rmSync, statSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { loadKeyStore } from "../src/auth/key-store.js";
import { ServiceAccountKeys } from "../src/auth/service-account-keys.js";
import { captureLog } from "./support/log-capture.js";

const dir = mkdtempSync(join(tmpdir(), "anvil-keys-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let files = 0;
const newPath = () => join(dir, `keys-${++files}.json`);

const secret = (bytes = 32) => randomBytes(bytes).toString("base64url");
const entry = (fields: Record<string, unknown> = {}) => ({
  key_id: "ci",
  principal: "ci@acme",
  tenant: "acme",
  roles: ["editor"],
  secret: secret(),
  expires_at: null,
  ...fields,
});
/** A keys file holding `keys`, written as is (JSON text when a string). */
function keysFile(keys: unknown, path = newPath()): string {
  writeFileSync(path, typeof keys === "string" ? keys : JSON.stringify({ keys }));
  return path;
}
/** Why loading `keys` fails. */
function refusal(keys: unknown): string {
  const file = keysFile(keys);
  try {
    loadKeyStore(file, false);
  } catch (err) {
    return (err as Error).message.replace(file, "<file>");
  }
  throw new Error("loaded");
}

describe("loadKeyStore", () => {
  it("reads every entry with its fields, the secret imported, tier unlimited unless named", () => {
    const first = entry({ key_id: "a", principal: "a@globex", tenant: "globex", roles: ["admin", "worker"], expires_at: "2031-02-03T04:05:06Z" });
    const second = entry({ key_id: "b", tier: "pro", expires_at: undefined });
    const store = loadKeyStore(keysFile([first, second]), false);
    expect([...store.keys()]).toEqual(["a", "b"]);
    const a = store.get("a")!;
    expect({ ...a, secret: undefined, secretBytes: undefined }).toEqual({
      keyId: "a",
      principal: "a@globex",
      tenant: "globex",
      roles: ["admin", "worker"],
      secret: undefined,
      secretBytes: undefined,
      expiresAt: new Date("2031-02-03T04:05:06Z"),
      tier: "unlimited",
    });
    expect(Buffer.from(a.secretBytes).toString("base64url")).toBe(first.secret);
    expect(a.secret.type).toBe("secret");
    expect(a.secret.export().toString("base64url")).toBe(first.secret);
    expect(store.get("b")).toMatchObject({ tier: "pro", expiresAt: null });
  });

  it("refuses a missing file unless told to create it, and then writes one admin key readable by its owner only", () => {
    const missing = join(dir, "nested", `deeper-${randomBytes(4).toString("hex")}`, "keys.json");
    expect(() => loadKeyStore(missing, false)).toThrow(`keys file ${missing} does not exist`);
    const store = loadKeyStore(missing, true);
    const admin = store.get("admin")!;
    expect([...store.keys()]).toEqual(["admin"]);
    expect(admin).toMatchObject({ principal: "admin@default", tenant: "default", roles: ["admin"], expiresAt: null, tier: "unlimited" });
    expect(admin.secretBytes.byteLength).toBe(32);
    expect(statSync(missing).mode & 0o777).toBe(0o600);
    const written = JSON.parse(readFileSync(missing, "utf8")) as { keys: Array<Record<string, unknown>> };
    expect(written.keys).toEqual([
      { key_id: "admin", principal: "admin@default", tenant: "default", roles: ["admin"], secret: Buffer.from(admin.secretBytes).toString("base64url"), expires_at: null },
    ]);
    // Created once: loading again reads the same key.
    expect(Buffer.compare(loadKeyStore(missing, true).get("admin")!.secretBytes, admin.secretBytes)).toBe(0);
  });

  it("says what is wrong with a file that is not a keys file", () => {
    expect(refusal("{not json")).toBe("keys file <file> is not valid JSON");
    expect(refusal("null")).toBe('keys file <file> must be {"keys": [...]}');
    expect(refusal('{"keys": {"0": {}}}')).toBe('keys file <file> must be {"keys": [...]}');
    expect(refusal("[]")).toBe('keys file <file> must be {"keys": [...]}');
    expect(refusal([entry({ key_id: "a" }), entry({ key_id: "a" })])).toBe("<file>: duplicate key_id a");
  });

  it("says which entry and which field is wrong", () => {
    const second = (fields: Record<string, unknown>) => refusal([entry({ key_id: "ok" }), entry(fields)]);
    for (const field of ["key_id", "principal", "tenant", "secret"]) {
      expect(second({ [field]: "" }), field).toBe(`<file>: keys[1]: ${field} must be a non-empty string`);
      expect(second({ [field]: 7 }), field).toBe(`<file>: keys[1]: ${field} must be a non-empty string`);
      expect(second({ [field]: undefined }), field).toBe(`<file>: keys[1]: ${field} must be a non-empty string`);
    }
    expect(second({ secret: secret(31) })).toBe("<file>: keys[1]: secret must be base64url of at least 32 bytes");
    for (const roles of ["editor", ["editor", "superuser"], ["editor", 7], undefined]) {
      expect(second({ roles }), String(roles)).toBe("<file>: keys[1]: roles must be a list of known roles");
    }
    expect(second({ expires_at: "soon" })).toBe("<file>: keys[1]: expires_at must be an ISO date or null");
    expect(second({ expires_at: "" })).toBe("<file>: keys[1]: expires_at must be a non-empty string");
    expect(second({ expires_at: 1_900_000_000 })).toBe("<file>: keys[1]: expires_at must be a non-empty string");
    expect(second({ tier: "platinum" })).toBe("<file>: keys[1]: tier must be one of free, pro, enterprise, unlimited");
    // The edges that pass: a 32-byte secret, no roles at all.
    expect(loadKeyStore(keysFile([entry({ secret: secret(32), roles: [] })]), false).get("ci")!.roles).toEqual([]);
  });
});

describe("ServiceAccountKeys", () => {
  /** Keys over a file of its own holding `keys`, a log kept, and every change reported. */
  function watched(keys: unknown[]) {
    const file = keysFile(keys);
    const { log, lines } = captureLog("info");
    const accounts = new ServiceAccountKeys(file, false, log);
    const changes: string[][] = [];
    accounts.onChange((ids) => changes.push([...ids]));
    return { file, accounts, changes, logs: () => lines.map((l) => JSON.parse(l) as Record<string, unknown>) };
  }

  it("serves the keys of its file, creating the default file when told", () => {
    const a = entry({ key_id: "a" });
    const { accounts } = watched([a, entry({ key_id: "b" })]);
    expect(accounts.get("a")?.principal).toBe("ci@acme");
    expect(accounts.get("c")).toBeUndefined();
    expect([...accounts.values()].map((k) => k.keyId)).toEqual(["a", "b"]);
    const created = new ServiceAccountKeys(join(dir, `created-${randomBytes(4).toString("hex")}.json`), true, captureLog().log);
    expect([...created.values()].map((k) => k.keyId)).toEqual(["admin"]);
  });

  it("reports on reload exactly the keys removed or changed in any field; unchanged keys keep their identity", () => {
    const base = {
      same: entry({ key_id: "same" }),
      removed: entry({ key_id: "removed" }),
      principal: entry({ key_id: "principal" }),
      tenant: entry({ key_id: "tenant" }),
      tier: entry({ key_id: "tier", tier: "free" }),
      roles: entry({ key_id: "roles", roles: ["editor", "viewer"] }),
      secret: entry({ key_id: "secret" }),
      expiry: entry({ key_id: "expiry", expires_at: "2031-01-01T00:00:00Z" }),
      expiryDropped: entry({ key_id: "expiryDropped", expires_at: "2031-01-01T00:00:00Z" }),
      expiryAdded: entry({ key_id: "expiryAdded" }),
    };
    const { file, accounts, changes, logs } = watched(Object.values(base));
    const same = accounts.get("same");
    const changed = [
      base.same,
      { ...base.principal, principal: "other@acme" },
      { ...base.tenant, tenant: "globex" },
      { ...base.tier, tier: "pro" },
      { ...base.roles, roles: ["editor"] },
      { ...base.secret, secret: secret() },
      { ...base.expiry, expires_at: "2031-01-01T00:00:01Z" },
      { ...base.expiryDropped, expires_at: null },
      { ...base.expiryAdded, expires_at: "2031-01-01T00:00:00Z" },
      entry({ key_id: "added" }),
    ];
    keysFile(changed, file);
    expect(accounts.reload()).toBe(true);
    const gone = ["removed", "principal", "tenant", "tier", "roles", "secret", "expiry", "expiryDropped", "expiryAdded"];
    expect(changes.map((ids) => [...ids].sort())).toEqual([gone.sort()]);
    expect(accounts.get("same")).toBe(same);
    expect(accounts.get("removed")).toBeUndefined();
    expect(accounts.get("added")?.keyId).toBe("added");
    expect(accounts.get("tenant")?.tenant).toBe("globex");
    const reloaded = logs().filter((l) => l.msg === "keys file reloaded");
    expect(reloaded.map((l) => ({ ...l, removed_or_changed: (l.removed_or_changed as string[]).sort() }))).toMatchObject([
      { level: 30, file, keys: 10, removed_or_changed: gone.sort() },
    ]);
  });

  it("tells no listener when a reload changed nothing", () => {
    const { accounts, changes, logs } = watched([entry()]);
    const before = accounts.get("ci");
    expect(accounts.reload()).toBe(true);
    expect(changes).toEqual([]);
    expect(accounts.get("ci")).toBe(before);
    expect(logs().filter((l) => l.msg === "keys file reloaded")).toMatchObject([{ keys: 1, removed_or_changed: [] }]);
  });

  it("keeps its keys, and logs why, when the file no longer parses", () => {
    const { file, accounts, changes, logs } = watched([entry()]);
    const before = accounts.get("ci");
    keysFile("{broken", file);
    expect(accounts.reload()).toBe(false);
    expect(accounts.get("ci")).toBe(before);
    expect(changes).toEqual([]);
    expect(logs()).toEqual([
      expect.objectContaining({ level: 50, msg: "keys file not reloaded; keeping the keys loaded before", err: `keys file ${file} is not valid JSON`, file }),
    ]);
    keysFile([entry({ key_id: "other" })], file);
    expect(accounts.reload()).toBe(true);
    expect(changes).toEqual([["ci"]]);
  });

  /** Resolves with the ids of the next change reported; rejects when none comes within 10 s (the file is polled every 20 ms). */
  const nextChange = (accounts: ServiceAccountKeys) =>
    new Promise<readonly string[]>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("no reload within 10 s")), 10_000);
      accounts.onChange((ids) => {
        clearTimeout(timer);
        resolve(ids);
      });
    });

  /**
   * Resolves once the watcher polls: node takes its first view of the file
   * some time after watch(), and a change made before that is its baseline,
   * not a change. Touches the file (a later modification time, the same
   * keys) until a reload is logged.
   */
  async function polling(file: string, logs: () => Array<Record<string, unknown>>): Promise<void> {
    const reloads = () => logs().filter((l) => l.msg === "keys file reloaded").length;
    const before = reloads();
    for (let i = 1; reloads() === before; i++) {
      if (i > 200) throw new Error("the watcher never polled");
      utimesSync(file, new Date(), new Date(Date.now() + i * 1_000));
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  it("reloads when the file's modification time, size or inode changes, once however often watch() was called", async () => {
    const { file, accounts, logs } = watched([entry({ key_id: "a" })]);
    accounts.watch(20);
    accounts.watch(20);
    try {
      await polling(file, logs);
      const reloadsBefore = logs().filter((l) => l.msg === "keys file reloaded").length;
      // Same size, new modification time.
      let change = nextChange(accounts);
      keysFile([entry({ key_id: "b" })], file);
      utimesSync(file, new Date(), new Date(Date.now() + 5_000));
      expect(await change).toEqual(["a"]);
      // New size, same modification time.
      const { atime, mtime } = statSync(file);
      change = nextChange(accounts);
      keysFile([entry({ key_id: "bb" })], file);
      utimesSync(file, atime, mtime);
      expect(await change).toEqual(["b"]);
      // A new file moved in place: same size and modification time, another inode.
      const stat = statSync(file);
      const replacement = keysFile([entry({ key_id: "cc" })], `${file}.new`);
      utimesSync(replacement, stat.atime, stat.mtime);
      expect(statSync(replacement).size).toBe(stat.size);
      change = nextChange(accounts);
      renameSync(replacement, file);
      expect(await change).toEqual(["bb"]);
      expect(logs().filter((l) => l.msg === "keys file reloaded")).toHaveLength(reloadsBefore + 3);
    } finally {
      accounts.close();
    }
  });

  it("stops watching on close, and watches again when asked", async () => {
    const { file, accounts, logs } = watched([entry({ key_id: "a" })]);
    accounts.watch(20);
    accounts.close();
    accounts.watch(20);
    try {
      await polling(file, logs);
      const change = nextChange(accounts);
      keysFile([entry({ key_id: "b" })], file);
      utimesSync(file, new Date(), new Date(Date.now() + 5_000));
      expect(await change).toEqual(["a"]);
    } finally {
      accounts.close();
    }
  });
});
