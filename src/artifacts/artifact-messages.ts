import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { type Artifact as ArtifactMessage, ArtifactSchema, type UploadArtifactRequest, UploadArtifactRequestSchema } from "../../gen/anvil/operations/v1/operations_pb.js";
import { compileRequestValidator } from "../rpc/validation/field-rules.js";
import { InvalidArgumentError } from "../shared/errors.js";
import type { Artifact, ArtifactHeader } from "./artifact.js";

/** The proto of an artifact. */
export function toArtifactMessage(a: Artifact): ArtifactMessage {
  return create(ArtifactSchema, {
    operationId: a.operationId,
    name: a.name,
    contentType: a.contentType,
    sizeBytes: BigInt(a.sizeBytes),
    etag: etagOfContent(a.sha256),
    taskId: a.taskId,
    createTime: timestampFromDate(a.createTime),
  });
}

/** An artifact's entity tag: its content's hash, so equal tags mean equal bytes (a strong validator). */
function etagOfContent(sha256: string): string {
  return `"${sha256}"`;
}

/**
 * The content an `if_range` entity tag names, for RangeRequest.ifContent:
 * undefined when empty (no condition); a weak tag, a date or anything else
 * that is no artifact's tag names no content, so the whole artifact is sent.
 */
export function contentOfIfRange(ifRange: string): string | undefined {
  if (ifRange === "") return undefined;
  const m = /^"([0-9a-f]{64})"$/.exec(ifRange.trim());
  return m === null ? "" : m[1];
}

// The validation interceptor checks unary requests only; a client stream's
// header is checked here, against the same proto rules.
const validateUpload = compileRequestValidator(UploadArtifactRequestSchema);

/**
 * Splits an UploadArtifact stream into its header (the first message,
 * checked against the proto's rules) and its content (every later message's
 * chunk). INVALID_ARGUMENT when the first message is no header or a later
 * one is.
 */
export async function splitUpload(messages: AsyncIterable<UploadArtifactRequest>): Promise<{ header: ArtifactHeader; content: AsyncIterable<Uint8Array> }> {
  const iterator = messages[Symbol.asyncIterator]();
  const first = await iterator.next();
  if (first.done === true || first.value.item.case !== "header") throw InvalidArgumentError.field("header", "the first message must be the header");
  const violations = await validateUpload(first.value);
  if (violations.length > 0) {
    throw new InvalidArgumentError(`invalid request: ${violations.map((v) => `${v.field} ${v.description}`).join("; ")}`, violations);
  }
  const h = first.value.item.value;
  const header = { taskId: h.taskId, leaseToken: h.leaseToken, name: h.name, contentType: h.contentType, sizeBytes: h.sizeBytes === undefined ? undefined : Number(h.sizeBytes) };
  async function* content(): AsyncGenerator<Uint8Array> {
    for (let next = await iterator.next(); next.done !== true; next = await iterator.next()) {
      if (next.value.item.case !== "chunk") throw InvalidArgumentError.field("chunk", "every message after the header must be a chunk");
      yield next.value.item.value;
    }
  }
  return { header, content: content() };
}
