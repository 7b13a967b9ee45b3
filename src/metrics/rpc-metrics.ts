import type { DescMethod, DescService } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { Counter, Histogram, type Registry } from "prom-client";

/**
 * The protocol family a call came in by. gRPC-Web and Connect are separate
 * families because their clients (browsers, connect-web) fail differently;
 * REST calls are counted under the RPC they are transcoded to.
 */
export type RpcProtocol = "grpc" | "grpc_web" | "connect" | "rest";

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
  readonly #started: Counter;
  readonly #handled: Counter;
  readonly #seconds: Histogram;
  readonly #requestBytes: Histogram;
  readonly #responseBytes: Histogram;

  constructor(registry: Registry) {
    const labels = ["grpc_type", "grpc_service", "grpc_method", "protocol", "http_route"] as const;
    this.#started = new Counter({ name: "grpc_server_started_total", help: "RPCs started on the server.", labelNames: labels, registers: [registry] });
    this.#handled = new Counter({
      name: "grpc_server_handled_total",
      help: "RPCs completed on the server, whatever their status code.",
      labelNames: [...labels, "grpc_code"],
      registers: [registry],
    });
    this.#seconds = new Histogram({
      name: "grpc_server_handling_seconds",
      help: "Time from the request's arrival until the server finished the call (for streams: until the stream ended).",
      labelNames: labels,
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: [registry],
    });
    const sizeBuckets = [64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304];
    this.#requestBytes = new Histogram({
      name: "grpc_server_request_bytes",
      help: "Request body bytes as received on the wire (gRPC envelopes and compression included).",
      labelNames: labels,
      buckets: sizeBuckets,
      registers: [registry],
    });
    this.#responseBytes = new Histogram({
      name: "grpc_server_response_bytes",
      help: "Response body bytes as sent on the wire (gRPC envelopes, trailers in the body and compression included).",
      labelNames: labels,
      buckets: sizeBuckets,
      registers: [registry],
    });
  }

  /**
   * Creates every series a healthy call of these methods produces: for each
   * method over gRPC, gRPC-Web and Connect, and over REST for each of its
   * routes (`"GET /v1/users/{user_id}"`).
   */
  preinitialise(services: readonly DescService[], restRoutes: readonly { readonly method: DescMethod; readonly route: string }[]): void {
    for (const service of services) {
      for (const method of service.methods) {
        for (const protocol of ["grpc", "grpc_web", "connect"] as const) this.#initialise(method, protocol, "");
      }
    }
    for (const r of restRoutes) this.#initialise(r.method, "rest", r.route);
  }

  #initialise(method: DescMethod, protocol: RpcProtocol, route: string): void {
    const l = labelsOf(method, protocol, route);
    this.#started.inc(l, 0);
    this.#handled.inc({ ...l, grpc_code: "OK" }, 0);
    this.#seconds.zero(l);
    this.#requestBytes.zero(l);
    this.#responseBytes.zero(l);
  }

  /**
   * Counts a call as started and returns its meter. Every transport (the
   * fast unary path, connect's universal handler, REST) calls this once per
   * call it recognises as an RPC, before authentication, so refusals made
   * before the interceptors are counted too, and ends the meter once when
   * the response is written.
   */
  begin(method: DescMethod, protocol: RpcProtocol, route = ""): CallMeter {
    const labels = labelsOf(method, protocol, route);
    this.#started.inc(labels);
    const start = performance.now();
    let received = 0;
    let sent = 0;
    let code: Code | 0 | undefined;
    let ended = false;
    const handled = this.#handled;
    const seconds = this.#seconds;
    const requestBytes = this.#requestBytes;
    const responseBytes = this.#responseBytes;
    return {
      received: (n) => {
        received += n;
      },
      sent: (n) => {
        sent += n;
      },
      code: (c) => {
        if (code === undefined) code = c;
      },
      get coded() {
        return code !== undefined;
      },
      end: () => {
        if (ended) return;
        ended = true;
        handled.inc({ ...labels, grpc_code: codeLabel(code ?? Code.Unknown) });
        seconds.observe(labels, (performance.now() - start) / 1000);
        requestBytes.observe(labels, received);
        responseBytes.observe(labels, sent);
      },
    };
  }
}

function labelsOf(method: DescMethod, protocol: RpcProtocol, route: string) {
  return { grpc_type: grpcType(method), grpc_service: method.parent.typeName, grpc_method: method.name, protocol, http_route: route };
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
