import http from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { gunzipSync } from "node:zlib";
import protobuf from "protobufjs";

/** A span as the receiver decoded it from an OTLP export. */
export interface ReceivedSpan {
  readonly service: string;
  readonly traceId: string;
  readonly spanId: string;
  /** Empty for a root span. */
  readonly parentSpanId: string;
  /** The W3C tracestate the span carries. */
  readonly traceState: string;
  readonly name: string;
  /** OTLP's SpanKind: 1 internal, 2 server, 3 client, 4 producer, 5 consumer. */
  readonly kind: number;
  readonly attributes: Record<string, string | number | boolean>;
  /** The spans this one links to, by trace and span id. */
  readonly links: ReadonlyArray<{ readonly traceId: string; readonly spanId: string }>;
  /** OTLP's status code: 0 unset, 1 ok, 2 error. */
  readonly statusCode: number;
  readonly startNanos: bigint;
  readonly endNanos: bigint;
}

/** An OTLP/HTTP trace receiver on a free loopback port. */
export interface OtlpReceiver {
  /** `http://127.0.0.1:<port>`: the value of OTEL_EXPORTER_OTLP_ENDPOINT. */
  readonly endpoint: string;
  /** Every span received so far. */
  readonly spans: ReceivedSpan[];
  /** Export requests received (and decoded) so far. */
  readonly requests: () => number;
  close(): Promise<void>;
}

const protoRoot = fileURLToPath(new URL("./otlp-proto/", import.meta.url));

/**
 * The `ExportTraceServiceRequest` type from the opentelemetry-proto files
 * (test/support/otlp-proto, copied from open-telemetry/opentelemetry-proto),
 * decoded by protobufjs: what an OpenTelemetry Collector receives.
 */
function loadRequestType(): protobuf.Type {
  const root = new protobuf.Root();
  root.resolvePath = (_origin, target) => join(protoRoot, target);
  root.loadSync("opentelemetry/proto/collector/trace/v1/trace_service.proto", { keepCase: true });
  return root.lookupType("opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest");
}

/**
 * Starts a receiver that accepts `POST /v1/traces` with an OTLP/HTTP
 * protobuf body (gzip or not), as the OTLP exporters send it, decodes it
 * with the real OTLP schema and keeps the spans.
 */
export async function startOtlpReceiver(): Promise<OtlpReceiver> {
  const type = loadRequestType();
  const spans: ReceivedSpan[] = [];
  let requests = 0;
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      if (req.method !== "POST" || req.url !== "/v1/traces" || req.headers["content-type"] !== "application/x-protobuf") {
        res.writeHead(404).end();
        return;
      }
      let body = Buffer.concat(chunks);
      if (req.headers["content-encoding"] === "gzip") body = gunzipSync(body);
      const decoded = type.toObject(type.decode(body), { longs: String, bytes: Buffer, defaults: true, oneofs: true }) as ExportRequest;
      requests++;
      for (const rs of decoded.resource_spans) {
        const service = String(valueOf(rs.resource?.attributes.find((a) => a.key === "service.name")?.value));
        for (const ss of rs.scope_spans) for (const s of ss.spans) spans.push(toSpan(service, s));
      }
      // An empty ExportTraceServiceResponse: full success.
      res.writeHead(200, { "content-type": "application/x-protobuf" }).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    spans,
    requests: () => requests,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

interface KeyValue {
  key: string;
  value?: AnyValue;
}
interface AnyValue {
  /** Which member of the `value` oneof is set (protobufjs's `oneofs` option). */
  value?: "string_value" | "bool_value" | "int_value" | "double_value";
  string_value?: string;
  bool_value?: boolean;
  int_value?: string;
  double_value?: number;
}
interface RawSpan {
  trace_id: Buffer;
  span_id: Buffer;
  parent_span_id: Buffer;
  trace_state: string;
  name: string;
  kind: number;
  start_time_unix_nano: string;
  end_time_unix_nano: string;
  attributes: KeyValue[];
  links: Array<{ trace_id: Buffer; span_id: Buffer }>;
  status?: { code: number };
}
interface ExportRequest {
  resource_spans: Array<{ resource?: { attributes: KeyValue[] }; scope_spans: Array<{ spans: RawSpan[] }> }>;
}

function valueOf(v: AnyValue | undefined): string | number | boolean {
  switch (v?.value) {
    case "string_value":
      return v.string_value!;
    case "int_value":
      return Number(v.int_value);
    case "double_value":
      return v.double_value!;
    case "bool_value":
      return v.bool_value!;
    default:
      return "";
  }
}

function toSpan(service: string, s: RawSpan): ReceivedSpan {
  return {
    service,
    traceId: s.trace_id.toString("hex"),
    spanId: s.span_id.toString("hex"),
    parentSpanId: s.parent_span_id.toString("hex"),
    traceState: s.trace_state,
    name: s.name,
    kind: s.kind,
    attributes: Object.fromEntries(s.attributes.map((a) => [a.key, valueOf(a.value)])),
    links: s.links.map((l) => ({ traceId: l.trace_id.toString("hex"), spanId: l.span_id.toString("hex") })),
    statusCode: s.status?.code ?? 0,
    startNanos: BigInt(s.start_time_unix_nano),
    endNanos: BigInt(s.end_time_unix_nano),
  };
}
