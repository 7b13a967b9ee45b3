import type { DescService } from "@bufbuild/protobuf";
import type { Schema, SchemaCollector } from "./json-schema.js";

const errorContent = { "application/json": { schema: { $ref: "#/components/schemas/Error" } } };

/**
 * The routes that are no `google.api.http` binding — the WebSocket watch
 * and webhook deliveries — described from the descriptors of the methods
 * they call, when `services` serve them (by name, so a document built from
 * descriptors with comments finds them too).
 */
export function transportPaths(services: readonly DescService[], collector: SchemaCollector): Record<string, Record<string, Schema>> {
  const method = (service: string, name: string) => services.find((s) => s.typeName === service)?.methods.find((m) => m.name === name);
  const paths: Record<string, Record<string, Schema>> = {};
  const watch = method("anvil.operations.v1.OperationService", "WatchOperation");
  if (watch !== undefined) paths["/ws/operations/{id}"] = { get: watchSocket(collector.message(watch.output)) };
  const run = method("anvil.workflows.v1.WorkflowService", "RunWorkflow");
  const execute = method("anvil.ipas.v1.IpaService", "ExecuteIpa");
  const correlate = method("anvil.findings.v1.FindingService", "CorrelateAlert");
  if (services.some((s) => s.typeName === "anvil.webhooks.v1.WebhookService") && run && execute && correlate) {
    paths["/hooks/{id}"] = {
      post: delivery(collector.message(run.output), collector.message(execute.output), collector.message(correlate.input), collector.message(correlate.output)),
    };
  }
  return paths;
}

function watchSocket(message: Schema): Schema {
  return {
    operationId: "OperationService_WatchOperation_WebSocket",
    tags: ["OperationService"],
    summary: "Watches an operation over a WebSocket (HTTP/1.1 Upgrade).",
    description:
      "WatchOperation as a WebSocket: typed JSON messages with snake_case keys, `{\"type\": \"progress\" | \"log\" | \"error\" | \"completion\", " +
      "\"operation_id\", \"sequence\", …, \"timestamp\"}` (progress: `progress`, `stage`, `message`; log: `level`, `message`; error: " +
      "`error_code`, `error_message`, `details`; completion: `status`, `result`), one per operation event, so sequences have no gaps. " +
      "The credential comes as `Authorization`, as the `api_key` or `access_token` query parameter, or in a first " +
      "`{\"type\": \"auth\", \"token\": …}` message. Close codes: 1000 after completion, 1001 shutdown, 1008 authentication or " +
      "permission, 1009 message too big, 1013 stream cap reached or slow consumer, 4404 operation not found, 4408 deadline.",
    parameters: [
      { name: "id", in: "path", required: true, description: "The operation's id.", schema: { type: "string", format: "uuid" } },
      { name: "after_sequence", in: "query", description: "Resume: send only events with a greater sequence.", schema: { type: "string", pattern: "^[0-9]+$" } },
      { name: "access_token", in: "query", description: "The bearer token (JWT or API key), for browsers. Never logged.", schema: { type: "string" } },
      { name: "api_key", in: "query", description: "An API key, for clients that cannot send headers. Never logged.", schema: { type: "string" } },
      { name: "Upgrade", in: "header", required: true, schema: { type: "string", enum: ["websocket"] } },
    ],
    responses: {
      "101": {
        description: "Switching Protocols: the WebSocket is open; each text frame is one JSON message (shape above), derived from the WatchOperation stream.",
        "x-message-schema": message,
      },
      "404": { description: "No WebSocket route at this path (any other refusal arrives as a close code).", content: errorContent },
      default: { description: "An error, with the HTTP status of its code.", content: errorContent },
    },
  };
}

function delivery(operation: Schema, execution: Schema, alert: Schema, correlation: Schema): Schema {
  const header = (name: string, description: string) => ({ name, in: "header", required: true, description, schema: { type: "string" } });
  return {
    operationId: "WebhookService_Deliver",
    tags: ["WebhookService"],
    summary: "Delivers a webhook: starts the endpoint's target.",
    description:
      "A delivery signed as Standard Webhooks says, with the endpoint's `whsec_` secret: `webhook-signature` is `v1,` and the base64 " +
      "HMAC-SHA256 of `{webhook-id}.{webhook-timestamp}.{body}`. No bearer token: the signature authenticates, and the delivery acts as " +
      "the endpoint's creator (its roles and rate-limit tier). A replayed `webhook-id` gets the first delivery's answer and starts " +
      "nothing again. The body is at most ANVIL_MAX_WEBHOOK_BYTES (1 MiB by default).",
    security: [],
    parameters: [
      { name: "id", in: "path", required: true, description: "The webhook endpoint's id.", schema: { type: "string", format: "uuid" } },
      header("webhook-id", "The delivery's unique id; replays carry the same one."),
      header("webhook-timestamp", "Seconds since the epoch; refused when more than 5 minutes from the server's clock."),
      header("webhook-signature", "Space-separated `v1,<base64 signature>` entries; one must match."),
    ],
    requestBody: {
      required: true,
      description: "The payload, signed as sent. For an alert-correlation endpoint, a JSON object read as a CorrelateAlertRequest (unknown fields ignored); other targets ignore it.",
      content: { "application/json": { schema: { oneOf: [alert, { type: "object" }] } } },
    },
    responses: {
      "202": { description: "Work started: the RunWorkflowResponse or ExecuteIpaResponse, with the operation.", content: { "application/json": { schema: { oneOf: [operation, execution] } } } },
      "200": { description: "The alert's correlation: a CorrelateAlertResponse.", content: { "application/json": { schema: correlation } } },
      "401": { description: "Missing headers, a timestamp outside 5 minutes, or a signature that does not match.", content: errorContent },
      "404": { description: "No webhook endpoint with this id (in any tenant).", content: errorContent },
      "413": { description: "The body is larger than ANVIL_MAX_WEBHOOK_BYTES.", content: errorContent },
      "429": { description: "The endpoint owner's rate limit, or too many failed deliveries from this address.", content: errorContent },
      default: { description: "An error of the target's call, with the HTTP status of its code.", content: errorContent },
    },
  };
}
