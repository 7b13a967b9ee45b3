import { ArtifactSchema, OperationService, WorkerService } from "../../../gen/anvil/operations/v1/operations_pb.js";
import type { Schema, SchemaCollector } from "./json-schema.js";
import { protoComment } from "./proto-comments.js";

const errorResponse = { description: "An error, with the HTTP status of its code.", content: { "application/json": { schema: { $ref: "#/components/schemas/Error" } } } };
const nameParameter = (description: string): Schema => ({
  name: "name",
  in: "path",
  required: true,
  description,
  schema: { type: "string", pattern: "^[A-Za-z0-9_-][A-Za-z0-9._-]*$", maxLength: 255 },
});
const uuidParameter = (name: string, description: string): Schema => ({ name, in: "path", required: true, description, schema: { type: "string", format: "uuid" } });

/**
 * The artifact routes (src/server/artifacts/artifact-routes.ts), which are
 * not transcoded from annotations: their bodies are raw bytes of any media
 * type, so they are described here, by hand, beside the generated paths.
 */
export function artifactPaths(collector: SchemaCollector): Record<string, Record<string, Schema>> {
  const artifact = collector.message(ArtifactSchema);
  const download = downloadOperation();
  return {
    "/v1/tasks/{task_id}/artifacts/{name}": {
      put: {
        operationId: "WorkerService_UploadArtifact_Put",
        tags: [WorkerService.name],
        summary: "Uploads a file the leased task produced, as the raw request body.",
        description:
          `${protoComment(WorkerService.method.uploadArtifact) ?? ""}\n\nThe body is the file; \`Content-Type\` is its media type, ` +
          "`Content-Length` its size (a chunked body is accepted too, within the limit). An artifact of the same name is replaced.",
        parameters: [
          uuidParameter("task_id", "The leased task."),
          nameParameter("The file's name within the operation."),
          { name: "Anvil-Lease-Token", in: "header", required: true, description: "The lease token ClaimTask returned (a secret: never logged).", schema: { type: "string", format: "uuid" } },
        ],
        requestBody: { required: true, content: { "*/*": { schema: { type: "string", contentMediaType: "application/octet-stream" } } } },
        responses: {
          "201": { description: "Stored: the artifact.", headers: { ETag: { schema: { type: "string" } }, Location: { schema: { type: "string" } } }, content: { "application/json": { schema: artifact } } },
          "413": { description: "Larger than ANVIL_MAX_ARTIFACT_BYTES.", content: { "application/json": { schema: { $ref: "#/components/schemas/Error" } } } },
          default: errorResponse,
        },
      },
    },
    "/v1/operations/{operation_id}/artifacts/{name}": {
      get: download,
      head: {
        ...download,
        operationId: "OperationService_DownloadArtifact_Head",
        summary: "The headers a download of the artifact would have (size, ETag, range), without its content.",
        description: "Answers as `GET` does — the same status and headers, ranges and conditions included — with no body.",
        responses: Object.fromEntries(Object.entries(download.responses as Record<string, Schema>).map(([status, r]) => [status, withoutContent(r)])),
      },
    },
  };
}

/** A response as HEAD answers it: its headers, no content. */
function withoutContent({ content: _content, ...response }: Schema): Schema {
  return response;
}

/** The download, as the GET route serves it (and HEAD, without content). */
function downloadOperation(): Schema {
  return {
        operationId: "OperationService_DownloadArtifact_Get",
        tags: [OperationService.name],
        summary: "Downloads an artifact of the operation.",
        description: protoComment(OperationService.method.downloadArtifact) ?? "Downloads an artifact of the operation.",
        parameters: [
          uuidParameter("operation_id", "The operation's id."),
          nameParameter("The artifact's name."),
          { name: "Range", in: "header", description: "One byte range: `bytes=a-b`, `bytes=a-` or `bytes=-n` (several ranges: the whole file).", schema: { type: "string" } },
          {
            name: "If-Range",
            in: "header",
            description: "The entity tag of the copy the client resumes: the Range is honoured only while the artifact still has it (else 200 with the whole file).",
            schema: { type: "string" },
          },
          { name: "If-None-Match", in: "header", description: "Entity tags the client holds: 304 when the artifact's is among them.", schema: { type: "string" } },
        ],
        responses: {
          "200": {
            description: "The file, with `Content-Type` its media type, `Content-Length`, a strong `ETag` and `Content-Disposition: attachment`.",
            headers: { ETag: { schema: { type: "string" } }, "Content-Disposition": { schema: { type: "string" } }, "Accept-Ranges": { schema: { type: "string", const: "bytes" } } },
            content: { "*/*": { schema: { type: "string", contentMediaType: "application/octet-stream" } } },
          },
          "206": {
            description: "The requested range, with `Content-Range`.",
            headers: { "Content-Range": { schema: { type: "string" } }, ETag: { schema: { type: "string" } } },
            content: { "*/*": { schema: { type: "string", contentMediaType: "application/octet-stream" } } },
          },
          "304": { description: "Not modified: the client's copy has this entity tag." },
          "416": { description: "The range starts at or past the end; `Content-Range: bytes */<size>`.", headers: { "Content-Range": { schema: { type: "string" } } } },
          default: errorResponse,
        },
  };
}
