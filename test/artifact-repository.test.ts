// The artifacts' SQL (src/artifacts/artifact.repository.ts) straight over a
// real database: an upload's life (begun, chunks stored, finished or
// discarded), what a finish replaces, what reads see, and the chunks read
// back, with another tenant's identical operation and uploads beside the
// caller's. The end-to-end suite reaches these through the artifact routes,
// where an upload's steps run in transactions of their own.
import { createHash, randomBytes, randomUUID } from "node:crypto";
import { sql } from "kysely";
import { describe, expect, it } from "vitest";
import type { Artifact } from "../src/artifacts/artifact.js";
import { ArtifactRepository } from "../src/artifacts/artifact.repository.js";
import { NotFoundError } from "../src/shared/errors.js";
import { databaseKinds } from "./support/databases.js";
import { migratedDatabase } from "./support/migrated-database.js";

const chunkBytes = 100;

describe.each(databaseKinds)("artifact statements on %s", (kind) => {
  const suite = migratedDatabase(kind);

  const artifacts = <T>(tenant: string, work: (a: ArtifactRepository) => Promise<T>): Promise<T> =>
    suite.db.transaction().execute((trx) => work(new ArtifactRepository(trx, tenant)));
  const failure = (p: Promise<unknown>) => p.then(() => undefined, (e: unknown) => e);
  /** An operation of `tenant` (a fresh one unless given), and one of the same id in another tenant. */
  const newOperation = async (tenant = `tenant-${randomUUID().slice(0, 8)}`) => {
    const operationId = randomUUID();
    for (const t of [tenant, `${tenant}-other`]) {
      await sql`insert into operations (tenant_id, id, kind, state) values (${t}, ${operationId}, 'test.artifacts', 'running')`.execute(suite.db);
    }
    return { tenant, other: `${tenant}-other`, operationId };
  };
  /** Uploads `data` as `name` in chunks and finishes it. */
  const upload = async (tenant: string, operationId: string, name: string, data: Buffer, taskId = randomUUID()) => {
    const id = await artifacts(tenant, (a) => a.begin(operationId, taskId, name, "text/plain", chunkBytes));
    for (let seq = 0; seq * chunkBytes < data.length; seq++) {
      await artifacts(tenant, (a) => a.putChunk(id, seq, data.subarray(seq * chunkBytes, (seq + 1) * chunkBytes)));
    }
    return artifacts(tenant, (a) => a.finish(id, data.length, sha256(data)));
  };
  const sha256 = (data: Buffer) => createHash("sha256").update(data).digest("hex");
  /** Reads back every chunk of a ready artifact, as a download does. */
  const download = async (tenant: string, artifact: Artifact) => {
    const parts: Buffer[] = [];
    for (let seq = 0; seq * artifact.chunkBytes < artifact.sizeBytes; seq++) {
      const into = Buffer.alloc(artifact.chunkBytes);
      const length = await artifacts(tenant, (a) => a.chunkInto(artifact.id, seq, into));
      parts.push(into.subarray(0, length));
    }
    return Buffer.concat(parts);
  };
  const names = async (tenant: string, operationId: string, limit = 10, after?: string) =>
    (await artifacts(tenant, (a) => a.list(operationId, limit, after))).map((x) => x.name);

  it("keeps an upload out of sight until it finishes, then shows it with every field, its chunks read back as stored", async () => {
    const { tenant, other, operationId } = await newOperation();
    const taskId = randomUUID();
    // Chunks past 57 bytes: PostgreSQL breaks their base64 into lines.
    const data = randomBytes(2 * chunkBytes + 37);
    const id = await artifacts(tenant, (a) => a.begin(operationId, taskId, "report.txt", "text/csv", chunkBytes));
    for (let seq = 0; seq < 3; seq++) await artifacts(tenant, (a) => a.putChunk(id, seq, data.subarray(seq * chunkBytes, (seq + 1) * chunkBytes)));
    const hidden = await failure(artifacts(tenant, (a) => a.get(operationId, "report.txt")));
    expect(hidden).toBeInstanceOf(NotFoundError);
    expect(hidden).toMatchObject({ resource: "artifact", id: `operations/${operationId}/artifacts/report.txt` });
    expect(await names(tenant, operationId)).toEqual([]);

    const ready = await artifacts(tenant, (a) => a.finish(id, data.length, sha256(data)));
    expect(ready).toEqual({ id, operationId, taskId, name: "report.txt", contentType: "text/csv", sizeBytes: data.length, chunkBytes, sha256: sha256(data), createTime: expect.any(Date) });
    expect(await artifacts(tenant, (a) => a.get(operationId, "report.txt"))).toEqual(ready);
    expect(await download(tenant, ready)).toEqual(data);
    const last = Buffer.alloc(chunkBytes, 0xff);
    expect(await artifacts(tenant, (a) => a.chunkInto(id, 2, last))).toBe(37);
    expect(last.subarray(0, 37)).toEqual(data.subarray(2 * chunkBytes));
    expect(last.subarray(37)).toEqual(Buffer.alloc(chunkBytes - 37, 0xff));

    // The other tenant, with an operation of the same id, sees none of it.
    expect(await failure(artifacts(other, (a) => a.get(operationId, "report.txt")))).toBeInstanceOf(NotFoundError);
    expect(await names(other, operationId)).toEqual([]);
    const theirs = await failure(artifacts(other, (a) => a.chunkInto(id, 0, Buffer.alloc(chunkBytes))));
    expect(theirs).toBeInstanceOf(NotFoundError);
    expect(theirs).toMatchObject({ resource: "artifact chunk", id: `${id}/0` });
    expect(await failure(artifacts(tenant, (a) => a.chunkInto(id, 3, Buffer.alloc(chunkBytes))))).toMatchObject({ resource: "artifact chunk", id: `${id}/3` });
  });

  it("replaces the ready artifact of the same name in its operation only, with its chunks, and no upload still under way", async () => {
    const { tenant, other, operationId } = await newOperation();
    const second = await newOperation(tenant);
    const old = await upload(tenant, operationId, "out.bin", randomBytes(150));
    const theirs = await upload(other, operationId, "out.bin", randomBytes(150));
    const sibling = await upload(tenant, operationId, "other.bin", randomBytes(10));
    const elsewhere = await upload(tenant, second.operationId, "out.bin", randomBytes(10));
    const pending = await artifacts(tenant, (a) => a.begin(operationId, randomUUID(), "out.bin", "text/plain", chunkBytes));
    await artifacts(tenant, (a) => a.putChunk(pending, 0, Buffer.from("later")));

    const data = randomBytes(120);
    const fresh = await upload(tenant, operationId, "out.bin", data);
    expect(fresh.id).not.toBe(old.id);
    expect(await artifacts(tenant, (a) => a.get(operationId, "out.bin"))).toEqual(fresh);
    expect(await download(tenant, fresh)).toEqual(data);
    expect(await failure(artifacts(tenant, (a) => a.chunkInto(old.id, 0, Buffer.alloc(chunkBytes))))).toBeInstanceOf(NotFoundError);
    expect(await artifacts(tenant, (a) => a.get(operationId, "other.bin"))).toEqual(sibling);
    expect(await artifacts(tenant, (a) => a.get(second.operationId, "out.bin"))).toEqual(elsewhere);
    expect(await artifacts(other, (a) => a.get(operationId, "out.bin"))).toEqual(theirs);

    // The upload that was under way finishes in its turn and replaces the fresh one.
    const later = await artifacts(tenant, (a) => a.finish(pending, 5, sha256(Buffer.from("later"))));
    expect(await artifacts(tenant, (a) => a.get(operationId, "out.bin"))).toEqual(later);
    expect(await download(tenant, later)).toEqual(Buffer.from("later"));
  });

  it("answers NOT_FOUND naming the upload when finishing one the tenant does not have, changing nothing", async () => {
    const { tenant, other, operationId } = await newOperation();
    const theirs = await upload(other, operationId, "x.txt", Buffer.from("theirs"));
    const pending = await artifacts(other, (a) => a.begin(operationId, randomUUID(), "x.txt", "text/plain", chunkBytes));
    const refused = await failure(artifacts(tenant, (a) => a.finish(pending, 1, "00")));
    expect(refused).toBeInstanceOf(NotFoundError);
    expect(refused).toMatchObject({ resource: "artifact upload", id: pending });
    expect(await artifacts(other, (a) => a.get(operationId, "x.txt"))).toEqual(theirs);
    expect(await names(tenant, operationId)).toEqual([]);
  });

  it("discards an upload under way with its chunks, and nothing ready nor another tenant's", async () => {
    const { tenant, other, operationId } = await newOperation();
    const ready = await upload(tenant, operationId, "keep.txt", Buffer.from("kept"));
    const pending = await artifacts(tenant, (a) => a.begin(operationId, randomUUID(), "gone.txt", "text/plain", chunkBytes));
    await artifacts(tenant, (a) => a.putChunk(pending, 0, Buffer.from("gone")));
    const theirs = await artifacts(other, (a) => a.begin(operationId, randomUUID(), "gone.txt", "text/plain", chunkBytes));
    await artifacts(other, (a) => a.putChunk(theirs, 0, Buffer.from("theirs")));

    await artifacts(tenant, (a) => a.discard(ready.id));
    await artifacts(tenant, (a) => a.discard(theirs));
    await artifacts(tenant, (a) => a.discard(pending));
    expect(await artifacts(tenant, (a) => a.get(operationId, "keep.txt"))).toEqual(ready);
    expect(await download(tenant, ready)).toEqual(Buffer.from("kept"));
    expect(await failure(artifacts(tenant, (a) => a.chunkInto(pending, 0, Buffer.alloc(chunkBytes))))).toBeInstanceOf(NotFoundError);
    expect(await failure(artifacts(tenant, (a) => a.finish(pending, 4, "00")))).toBeInstanceOf(NotFoundError);
    // The other tenant's upload is still there, and finishes.
    expect(await artifacts(other, (a) => a.finish(theirs, 6, sha256(Buffer.from("theirs"))))).toMatchObject({ name: "gone.txt", sizeBytes: 6 });
  });

  it("lists an operation's ready artifacts by name, in pages after a name", async () => {
    const { tenant, other, operationId } = await newOperation();
    const second = await newOperation(tenant);
    for (const name of ["c", "a", "d", "b"]) await upload(tenant, operationId, name, Buffer.from(name));
    await upload(other, operationId, "aa", Buffer.from("x"));
    await upload(tenant, second.operationId, "ab", Buffer.from("x"));
    await artifacts(tenant, (a) => a.begin(operationId, randomUUID(), "bb", "text/plain", chunkBytes));
    expect(await names(tenant, operationId)).toEqual(["a", "b", "c", "d"]);
    expect(await names(tenant, operationId, 2)).toEqual(["a", "b"]);
    expect(await names(tenant, operationId, 2, "b")).toEqual(["c", "d"]);
    expect(await names(tenant, operationId, 10, "d")).toEqual([]);
    const [first] = await artifacts(tenant, (a) => a.list(operationId, 1, undefined));
    expect(first).toEqual(await artifacts(tenant, (a) => a.get(operationId, "a")));
  });

  it("marks an upload as alive every 64 chunks, from the first: housekeeping leaves it alone while chunks arrive", async () => {
    const { tenant, operationId } = await newOperation();
    const id = await artifacts(tenant, (a) => a.begin(operationId, randomUUID(), "big.bin", "application/octet-stream", 1));
    /** Makes the upload look an hour idle, stores chunk `seq`, and says whether the upload looks alive again. */
    const touches = async (seq: number) => {
      await sql`update artifacts set update_time = now() - interval '1 hour' where tenant_id = ${tenant} and id = ${id}`.execute(suite.db);
      await artifacts(tenant, (a) => a.putChunk(id, seq, Buffer.from([seq % 256])));
      const { rows } = await sql<{ idle: boolean }>`select update_time < now() - interval '30 minutes' as idle from artifacts where tenant_id = ${tenant} and id = ${id}`.execute(suite.db);
      return !rows[0]!.idle;
    };
    expect(await touches(0)).toBe(true);
    expect(await touches(1)).toBe(false);
    expect(await touches(63)).toBe(false);
    expect(await touches(64)).toBe(true);
    expect(await touches(65)).toBe(false);
    expect(await touches(128)).toBe(true);
  });
});
