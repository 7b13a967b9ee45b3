/** A file a task attached to its operation. Only ready artifacts are ever shown. */
export interface Artifact {
  readonly id: string;
  readonly operationId: string;
  readonly taskId: string;
  readonly name: string;
  readonly contentType: string;
  readonly sizeBytes: number;
  /** Every chunk but the last holds exactly this many bytes. */
  readonly chunkBytes: number;
  /** Hex SHA-256 of the content. */
  readonly sha256: string;
  readonly createTime: Date;
}

/** What an upload declares before its first byte. */
export interface ArtifactHeader {
  readonly taskId: string;
  readonly leaseToken: string;
  readonly name: string;
  /** Empty: `application/octet-stream`. */
  readonly contentType: string;
  /** The bytes the content will have; undefined when not known in advance (a chunked PUT). */
  readonly sizeBytes: number | undefined;
}

/** A byte range of an artifact: `[start, end)`. */
export interface ByteRange {
  readonly start: number;
  readonly end: number;
}

/**
 * Bytes per stored chunk: one row, one statement, one buffer a transfer
 * holds at a time. Read back as base64 text (82 KiB), under V8's 128 KiB
 * large-object size, so each chunk's transient string is an ordinary young
 * object that a minor collection frees at once (see
 * ArtifactRepository.chunkInto and TransferGarbage, which keep the gateway's
 * memory flat while 50 MiB pass through it, test/artifacts-memory.test.ts).
 */
export const artifactChunkBytes = 60 * 1024;

/** Names are one path segment, safe in a URL and a `Content-Disposition`: no `/`, no leading dot. */
export const artifactNamePattern = /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,254}$/;

/** Which bytes a download asks for: `[offset, offset + limit)` (limit 0: to the end), or the last `suffixBytes`. */
export interface RangeRequest {
  readonly offset: number;
  readonly limit: number;
  /** 0: unset. */
  readonly suffixBytes: number;
  /**
   * The content (hex SHA-256) the range was meant for, when the client
   * resumes a copy it holds part of: an artifact with other content is sent
   * whole instead. Undefined: the range applies to whatever is there.
   */
  readonly ifContent?: string | undefined;
}

/** The bytes of `artifact` that `request` selects: the whole artifact when its content is not the one the range was meant for (see resolveRange). */
export function rangeOf(artifact: Pick<Artifact, "sizeBytes" | "sha256">, request: RangeRequest): ByteRange | undefined {
  if (request.ifContent !== undefined && request.ifContent !== artifact.sha256) return { start: 0, end: artifact.sizeBytes };
  return resolveRange(artifact.sizeBytes, request);
}

/**
 * The bytes of a `size`-byte artifact that `request` selects; undefined when
 * `offset` is past the end. An offset at the very end selects nothing.
 */
export function resolveRange(size: number, request: RangeRequest): ByteRange | undefined {
  if (request.suffixBytes > 0) return { start: Math.max(0, size - request.suffixBytes), end: size };
  if (request.offset > size) return undefined;
  return { start: request.offset, end: request.limit === 0 ? size : Math.min(size, request.offset + request.limit) };
}
