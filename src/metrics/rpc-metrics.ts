import type { DescMethod, DescService } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { cachedLines, HistogramCells, labelText, sampleLine, type SeriesMetrics, type VersionedSeries, writeHistogram } from "./series-metric.js";

/**
 * The protocol family a call came in by. gRPC-Web and Connect are separate
 * families because their clients (browsers, connect-web) fail differently;
 * REST calls (server-sent events included), WebSocket watches and webhook
 * deliveries (`webhook`, as the audit log names them: senders that sign
 * rather than callers holding a token) are counted under the RPC they run.
 */
export type RpcProtocol = "grpc" | "grpc_web" | "connect" | "rest" | "websocket" | "webhook";

/** A method served on an HTTP route of its own (REST, a webhook delivery), labelled by the route's template. */
export interface RouteLabel {
  readonly method: DescMethod;
  readonly protocol: "rest" | "webhook";
  /** The route's template with its HTTP method: `"GET /v1/users/{user_id}"`. */
  readonly route: string;
}

/** The call measurement one transport holds for one call: see RpcMetrics.begin. */
export interface CallMeter {
  /** Adds request body bytes as received on the wire. */
  received(bytes: number): void;
  /** Adds response body bytes as sent on the wire. */
  sent(bytes: number): void;
  /** Sets the call's status code; the first one set wins (the transport may learn it from the interceptors or itself). */
  code(code: Code | 0): void;
  /** Whether a code was set. */
  readonly coded: boolean;
  /** Counts the call as handled, with its duration, sizes and code (Unknown if none was set). Later calls do nothing. */
  end(): void;
}

/**
 * The per-RPC metrics, named as go-grpc-prometheus names them so existing
 * dashboards and alerts work: `grpc_server_started_total`,
 * `grpc_server_handled_total` (with `grpc_code`) and the
 * `grpc_server_handling_seconds` histogram, labelled by `grpc_type`,
 * `grpc_service`, `grpc_method`; plus Anvil's own `protocol` label and, for
 * REST, `http_route` (the route's template, never the path: ids do not become
 * label values), and two histograms go-grpc-prometheus lacks,
 * `grpc_server_request_bytes` and `grpc_server_response_bytes`.
 *
 * Every series a healthy method has (started, handled with code OK, the
 * histograms) exists from start with zero, so `rate()` over a method that
 * has not been called yet is 0, not absent.
 */
export class RpcMetrics {
  // Series by method, then by protocol and route: found with two map
  // lookups per call, counted in plain fields, formatted at scrape time.
  readonly #series = new Map<DescMethod, Map<string, Series>>();
  readonly #all: Series[] = [];

  constructor(series: SeriesMetrics) {
    const all = () => this.#all;
    series.register({
      name: "grpc_server_started_total",
      help: "RPCs started on the server.",
      type: "counter",
      write: cachedLines(all, (s, out) => out.push(sampleLine("grpc_server_started_total", s.labels, s.started))),
    });
    series.register({
      name: "grpc_server_handled_total",
      help: "RPCs completed on the server, whatever their status code.",
      type: "counter",
      write: cachedLines(all, (s, out) =>
        s.handled.forEach((n, code) => {
          if (code === 0 || n > 0) out.push(sampleLine("grpc_server_handled_total", `${s.labels},grpc_code="${codeLabel(code)}"`, n));
        }),
      ),
    });
    const histogram = (name: string, help: string, cells: (s: Series) => HistogramCells) =>
      series.register({
        name,
        help,
        type: "histogram",
        write: cachedLines(all, (s, out) => writeHistogram(out, name, s.labels, cells(s))),
      });
    histogram(
      "grpc_server_handling_seconds",
      "Time from the request's arrival until the server finished the call (for streams: until the stream ended).",
      (s) => s.seconds,
    );
    histogram("grpc_server_request_bytes", "Request body bytes as received on the wire (gRPC envelopes and compression included).", (s) => s.requestBytes);
    histogram(
      "grpc_server_response_bytes",
      "Response body bytes as sent on the wire (gRPC envelopes, trailers in the body and compression included).",
      (s) => s.responseBytes,
    );
  }

  /**
   * Creates every series a healthy call of these methods produces: for each
   * method over gRPC, gRPC-Web and Connect, and for each HTTP route that
   * serves one (REST, webhook deliveries).
   */
  preinitialise(services: readonly DescService[], routes: readonly RouteLabel[]): void {
    for (const service of services) {
      for (const method of service.methods) {
        for (const protocol of ["grpc", "grpc_web", "connect"] as const) this.#seriesOf(method, protocol, "");
      }
    }
    for (const r of routes) this.#seriesOf(r.method, r.protocol, r.route);
  }

  #seriesOf(method: DescMethod, protocol: RpcProtocol, route: string): Series {
    let byRoute = this.#series.get(method);
    if (byRoute === undefined) this.#series.set(method, (byRoute = new Map()));
    const key = route === "" ? protocol : `${protocol} ${route}`;
    let series = byRoute.get(key);
    if (series === undefined) {
      byRoute.set(key, (series = new Series(labelsOf(method, protocol, route))));
      this.#all.push(series);
    }
    return series;
  }

  /**
   * Counts a call as started and returns its meter. Every transport (the
   * fast unary path, connect's universal handler, REST) calls this once per
   * call it recognises as an RPC, before authentication, so refusals made
   * before the interceptors are counted too, and ends the meter once when
   * the response is written.
   */
  begin(method: DescMethod, protocol: RpcProtocol, route = ""): CallMeter {
    const series = this.#seriesOf(method, protocol, route);
    series.started++;
    series.version++;
    return new Meter(series);
  }
}

const secondsBuckets = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
const sizeBuckets = [64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304];
// Connect's codes run from 1 (Canceled) to 16 (Unauthenticated); 0 is OK.
const codeCount = 17;

/** The counts of one (method, protocol, route). */
class Series implements VersionedSeries {
  version = 0;
  started = 0;
  readonly handled = new Array<number>(codeCount).fill(0);
  readonly seconds = new HistogramCells(secondsBuckets);
  readonly requestBytes = new HistogramCells(sizeBuckets);
  readonly responseBytes = new HistogramCells(sizeBuckets);

  /** The series' labels, formatted once (see labelText). */
  constructor(readonly labels: string) {}
}

class Meter implements CallMeter {
  readonly #series: Series;
  readonly #start = performance.now();
  #received = 0;
  #sent = 0;
  #code: Code | 0 | undefined;
  #ended = false;

  constructor(series: Series) {
    this.#series = series;
  }

  received(n: number): void {
    this.#received += n;
  }

  sent(n: number): void {
    this.#sent += n;
  }

  code(code: Code | 0): void {
    if (this.#code === undefined) this.#code = code;
  }

  get coded(): boolean {
    return this.#code !== undefined;
  }

  end(): void {
    if (this.#ended) return;
    this.#ended = true;
    const s = this.#series;
    const code = this.#code ?? Code.Unknown;
    s.version++;
    s.handled[code >= 0 && code < codeCount ? code : Code.Unknown]!++;
    s.seconds.observe((performance.now() - this.#start) / 1000);
    s.requestBytes.observe(this.#received);
    s.responseBytes.observe(this.#sent);
  }
}

function labelsOf(method: DescMethod, protocol: RpcProtocol, route: string): string {
  return labelText({ grpc_type: grpcType(method), grpc_service: method.parent.typeName, grpc_method: method.name, protocol, http_route: route });
}

/** go-grpc-prometheus's `grpc_type` values. */
function grpcType(method: DescMethod): string {
  switch (method.methodKind) {
    case "unary":
      return "unary";
    case "server_streaming":
      return "server_stream";
    case "client_streaming":
      return "client_stream";
    case "bidi_streaming":
      return "bidi_stream";
  }
}

/** The code's name as grpc-go spells it (`OK`, `InvalidArgument`, …): what go-grpc-prometheus puts in `grpc_code`. */
export function codeLabel(code: Code | 0): string {
  return code === 0 ? "OK" : (Code[code] ?? "Unknown");
}
