import { createHash } from "node:crypto";
import type { UnitOfWork } from "../db/unit-of-work.js";
import type { TaskLifecycle } from "../operations/task-lifecycle.js";
import { InvalidArgumentError, OutOfRangeError, ResourceExhaustedError } from "../shared/errors.js";
import type { KeysetPager, KeysetQuery } from "../shared/keyset-pager.js";
import type { Page, PageRequest } from "../shared/pagination.js";
import type { Scope } from "../shared/scope.js";
import { type Artifact, type ArtifactHeader, artifactChunkBytes, artifactNamePattern, type ByteRange, type RangeRequest, rangeOf } from "./artifact.js";

function artifactsOf(operationId: string): KeysetQuery<Artifact> {
  return { query: `operations/${operationId}/artifacts`, shape: ["string"], keyOf: (a) => [a.name] };
}

/**
 * A download: the artifact, the byte range served (undefined:
 * unsatisfiable), and those bytes, read a chunk at a time as they are
 * pulled; each chunk is valid only until the next is pulled.
 */
export interface ArtifactDownload {
  readonly artifact: Artifact;
  readonly range: ByteRange | undefined;
  readonly bytes: AsyncIterable<Uint8Array>;
}

/**
 * The artifact use cases. An upload is several short transactions, never
 * one long one: the first checks the lease and opens the upload, each
 * stored chunk is one more, and the last checks the lease again and makes
 * the artifact visible (the change that is audited). A long transaction
 * would pin a connection — the embedded database's only one — for as long
 * as a client takes to send its file. Downloads read one chunk per
 * statement, as the client takes them.
 */
export class ArtifactsService {
  readonly #uow: UnitOfWork;
  readonly #pager: KeysetPager;
  readonly #lifecycle: TaskLifecycle;
  readonly #maxBytes: number;
  readonly #moved: (bytes: number) => void;

  /** `moved` is told of every chunk stored or read (for whoever frees the transfer's garbage: TransferGarbage). */
  constructor(uow: UnitOfWork, pager: KeysetPager, lifecycle: TaskLifecycle, maxBytes: number, moved: (bytes: number) => void = () => {}) {
    this.#uow = uow;
    this.#pager = pager;
    this.#lifecycle = lifecycle;
    this.#maxBytes = maxBytes;
    this.#moved = moved;
  }

  /** The largest artifact accepted, in bytes. */
  get maxBytes(): number {
    return this.#maxBytes;
  }

  /**
   * Stores `content` as the artifact `header` names, attached to the
   * operation of the leased task. FAILED_PRECONDITION (`LEASE_LOST`) when the
   * lease is not held at the start or at the end; RESOURCE_EXHAUSTED past
   * the size limit; INVALID_ARGUMENT when the bytes differ from the declared
   * size. Whatever fails, nothing stays stored.
   */
  async upload(scope: Scope, header: ArtifactHeader, content: AsyncIterable<Uint8Array>): Promise<Artifact> {
    if (!artifactNamePattern.test(header.name)) throw InvalidArgumentError.field("header.name", "must be letters, digits, '.', '_' or '-', not starting with '.', at most 255 characters");
    if (header.sizeBytes !== undefined && header.sizeBytes > this.#maxBytes) throw this.#tooLarge();
    const unaudited: Scope = { tenant: scope.tenant, deadline: scope.deadline, trace: scope.trace };
    const contentType = header.contentType || "application/octet-stream";
    const id = await this.#uow.transact(unaudited, async (tx) => {
      const { task } = await this.#lifecycle.holding(tx, header.taskId, header.leaseToken);
      return tx.artifacts.begin(task.operationId, task.id, header.name, contentType, artifactChunkBytes);
    });
    try {
      const hash = createHash("sha256");
      let size = 0;
      let seq = 0;
      for await (const chunk of rechunk(content, artifactChunkBytes)) {
        size += chunk.byteLength;
        if (size > this.#maxBytes) throw this.#tooLarge();
        if (header.sizeBytes !== undefined && size > header.sizeBytes) throw InvalidArgumentError.field("header.size_bytes", `the content is longer than the declared ${header.sizeBytes} bytes`);
        hash.update(chunk);
        const n = seq++;
        await this.#uow.transact(unaudited, (tx) => tx.artifacts.putChunk(id, n, chunk));
        this.#moved(chunk.byteLength);
      }
      if (header.sizeBytes !== undefined && size !== header.sizeBytes) {
        throw InvalidArgumentError.field("header.size_bytes", `the content has ${size} bytes, not the declared ${header.sizeBytes}`);
      }
      const sha256 = hash.digest("hex");
      return await this.#uow.transact(scope, async (tx) => {
        // A worker fenced while it sent the file stores nothing.
        await this.#lifecycle.holding(tx, header.taskId, header.leaseToken);
        return tx.artifacts.finish(id, size, sha256);
      });
    } catch (err) {
      // Without the deadline: it may be what failed the upload, and the stored chunks must go regardless.
      await this.#uow.transact({ tenant: scope.tenant }, (tx) => tx.artifacts.discard(id)).catch(() => undefined);
      throw err;
    }
  }

  /** The operation's ready artifacts by name; NOT_FOUND when the operation does not exist. */
  list(scope: Scope, operationId: string, page: PageRequest): Promise<Page<Artifact>> {
    return this.#pager.page(scope, page, artifactsOf(operationId), (limit, after) =>
      this.#uow.read(scope, async (tx) => {
        const artifacts = await tx.artifacts.list(operationId, limit, after?.[0] as string | undefined);
        if (artifacts.length === 0) await tx.operations.get(operationId);
        return artifacts;
      }),
    );
  }

  /**
   * The artifact and the bytes of `request`'s range, pulled a chunk at a
   * time. NOT_FOUND when the operation or artifact does not exist in the
   * tenant; the range is undefined (unsatisfiable) when `offset` is past
   * the end, and the whole artifact when its content is not `ifContent`.
   */
  async download(scope: Scope, operationId: string, name: string, request: RangeRequest): Promise<ArtifactDownload> {
    if (request.suffixBytes > 0 && (request.offset > 0 || request.limit > 0)) throw InvalidArgumentError.field("suffix_bytes", "cannot be combined with offset or limit");
    const artifact = await this.#uow.read(scope, (tx) => tx.artifacts.get(operationId, name));
    const range = rangeOf(artifact, request);
    return { artifact, range, bytes: range === undefined ? pastTheEnd(artifact, request.offset) : this.#bytes(scope, artifact, range) };
  }

  /**
   * The bytes of `range`, a chunk per statement, each read into one buffer
   * that every chunk of the download reuses (as rechunk does for uploads):
   * the caller must be done with a chunk — written out, not merely queued —
   * before it pulls the next. However slow its client, a download then
   * holds one chunk, and allocates no chunk-sized buffer per chunk.
   */
  async *#bytes(scope: Scope, artifact: Artifact, range: ByteRange): AsyncGenerator<Uint8Array> {
    const size = artifact.chunkBytes;
    const buffer = Buffer.allocUnsafe(size);
    for (let seq = Math.floor(range.start / size); seq * size < range.end; seq++) {
      const length = await this.#uow.read({ tenant: scope.tenant, trace: scope.trace }, (tx) => tx.artifacts.chunkInto(artifact.id, seq, buffer));
      this.#moved(length);
      const from = Math.max(0, range.start - seq * size);
      const to = Math.min(length, range.end - seq * size);
      yield buffer.subarray(from, to);
    }
  }

  #tooLarge(): ResourceExhaustedError {
    return new ResourceExhaustedError(`an artifact may have at most ${this.#maxBytes} bytes`, { limit: String(this.#maxBytes) });
  }
}

/** The bytes of an unsatisfiable range: none, only OUT_OF_RANGE once pulled (the artifact itself was found). */
async function* pastTheEnd(artifact: Artifact, offset: number): AsyncGenerator<Uint8Array> {
  throw new OutOfRangeError(`offset ${offset} is past the end of the ${artifact.sizeBytes}-byte artifact`);
}

/**
 * The bytes of `content` regrouped into chunks of exactly `size` bytes (the
 * last one shorter), copied into one buffer that every chunk reuses: the
 * caller must be done with a chunk (stored, hashed) before it pulls the
 * next. An upload then allocates no chunk-sized garbage of its own, which
 * Node would only free when V8 next collects (external memory triggers a
 * collection only every 64 MiB or so).
 */
export async function* rechunk(content: AsyncIterable<Uint8Array>, size: number): AsyncGenerator<Uint8Array> {
  const buffer = Buffer.allocUnsafe(size);
  let filled = 0;
  for await (const piece of content) {
    let at = 0;
    while (at < piece.byteLength) {
      const n = Math.min(size - filled, piece.byteLength - at);
      buffer.set(piece.subarray(at, at + n), filled);
      filled += n;
      at += n;
      if (filled === size) {
        yield buffer;
        filled = 0;
      }
    }
  }
  if (filled > 0) yield buffer.subarray(0, filled);
}
