import { randomUUID } from "node:crypto";
import { type Selectable, sql, type Transaction } from "kysely";
import type { Database } from "../db/schema.js";
import { NotFoundError } from "../shared/errors.js";
import type { Artifact } from "./artifact.js";
import type { ArtifactTable } from "./artifact.table.js";

/**
 * Queries over `artifacts` and `artifact_chunks`, within one transaction and
 * one tenant. Chunks are written and read one at a time: no query ever
 * carries a whole file.
 */
export class ArtifactRepository {
  readonly #trx: Transaction<Database>;
  readonly #tenant: string;

  constructor(trx: Transaction<Database>, tenant: string) {
    this.#trx = trx;
    this.#tenant = tenant;
  }

  /** A new artifact in state `uploading`; invisible until `finish`. Returns its id. */
  async begin(operationId: string, taskId: string, name: string, contentType: string, chunkBytes: number): Promise<string> {
    const id = randomUUID();
    await this.#trx
      .insertInto("artifacts")
      .values({ tenant_id: this.#tenant, id, operation_id: operationId, task_id: taskId, name, content_type: contentType, chunk_bytes: chunkBytes, state: "uploading" })
      .execute();
    return id;
  }

  /** Stores chunk `seq` of an uploading artifact. */
  async putChunk(artifactId: string, seq: number, data: Uint8Array): Promise<void> {
    await this.#trx.insertInto("artifact_chunks").values({ tenant_id: this.#tenant, artifact_id: artifactId, seq, data }).execute();
    // Keeps the upload from looking abandoned to housekeeping while it runs.
    if (seq % 64 === 0) await this.#trx.updateTable("artifacts").set({ update_time: new Date() }).where("tenant_id", "=", this.#tenant).where("id", "=", artifactId).execute();
  }

  /**
   * Makes an uploaded artifact visible, replacing a ready artifact of the
   * same name in its operation (deleted with its chunks).
   */
  async finish(artifactId: string, sizeBytes: number, sha256: string): Promise<Artifact> {
    const upload = await this.#trx.selectFrom("artifacts").selectAll().where("tenant_id", "=", this.#tenant).where("id", "=", artifactId).executeTakeFirst();
    if (upload === undefined) throw new NotFoundError("artifact upload", artifactId);
    await this.#trx
      .deleteFrom("artifacts")
      .where("tenant_id", "=", this.#tenant)
      .where("operation_id", "=", upload.operation_id)
      .where("name", "=", upload.name)
      .where("state", "=", "ready")
      .execute();
    const row = await this.#trx
      .updateTable("artifacts")
      .set({ state: "ready", size_bytes: sizeBytes, sha256, update_time: new Date() })
      .where("tenant_id", "=", this.#tenant)
      .where("id", "=", artifactId)
      .returningAll()
      .executeTakeFirstOrThrow();
    return toArtifact(row);
  }

  /** Deletes an upload that failed, with the chunks it stored. */
  async discard(artifactId: string): Promise<void> {
    await this.#trx.deleteFrom("artifacts").where("tenant_id", "=", this.#tenant).where("id", "=", artifactId).where("state", "=", "uploading").execute();
  }

  /** The ready artifact `name` of the operation, or NOT_FOUND. */
  async get(operationId: string, name: string): Promise<Artifact> {
    const row = await this.#trx
      .selectFrom("artifacts")
      .selectAll()
      .where("tenant_id", "=", this.#tenant)
      .where("operation_id", "=", operationId)
      .where("name", "=", name)
      .where("state", "=", "ready")
      .executeTakeFirst();
    if (row === undefined) throw new NotFoundError("artifact", `operations/${operationId}/artifacts/${name}`);
    return toArtifact(row);
  }

  /** Up to `limit` ready artifacts of the operation, by name, after `after`. */
  async list(operationId: string, limit: number, after: string | undefined): Promise<Artifact[]> {
    let query = this.#trx
      .selectFrom("artifacts")
      .selectAll()
      .where("tenant_id", "=", this.#tenant)
      .where("operation_id", "=", operationId)
      .where("state", "=", "ready");
    if (after !== undefined) query = query.where("name", ">", after);
    return (await query.orderBy("name").limit(limit).execute()).map(toArtifact);
  }

  /**
   * Chunk `seq` of an artifact, written into `into` (at least the
   * artifact's chunk size); returns its length. NOT_FOUND when it is gone
   * (the artifact was replaced or deleted meanwhile). Read as base64 text
   * and decoded in place: node-postgres receives a bytea as hex text (twice
   * its size) and decodes it into a new buffer per row, garbage that only a
   * collection frees; base64 is a third of the size, and decoding it into
   * the caller's buffer leaves nothing but the string behind.
   */
  async chunkInto(artifactId: string, seq: number, into: Buffer): Promise<number> {
    const row = await this.#trx
      .selectFrom("artifact_chunks")
      .select(sql<string>`encode(data, 'base64')`.as("data"))
      .where("tenant_id", "=", this.#tenant)
      .where("artifact_id", "=", artifactId)
      .where("seq", "=", seq)
      .executeTakeFirst();
    if (row === undefined) throw new NotFoundError("artifact chunk", `${artifactId}/${seq}`);
    // PostgreSQL breaks base64 into lines; Node's decoder skips the newlines.
    const length = into.write(row.data, 0, "base64");
    // V8 soon allocates node-postgres's row objects straight in the old
    // generation (they often outlive a minor collection), and a dead old
    // row still keeps its young string alive until the next full
    // collection: dropped here, the string goes with the next minor one.
    // Stryker disable next-line StringLiteral: equivalent: nothing reads the row afterwards; any short string frees the chunk's
    row.data = "";
    return length;
  }
}

function toArtifact(row: Selectable<ArtifactTable>): Artifact {
  return {
    id: row.id,
    operationId: row.operation_id,
    taskId: row.task_id,
    name: row.name,
    contentType: row.content_type,
    sizeBytes: Number(row.size_bytes),
    chunkBytes: row.chunk_bytes,
    // Stryker disable next-line StringLiteral: equivalent: only ready artifacts are read, and finish() gives each its sha256
    sha256: row.sha256 ?? "",
    createTime: row.create_time,
  };
}
