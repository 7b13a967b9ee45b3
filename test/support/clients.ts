import type { DescService } from "@bufbuild/protobuf";
import { type Client, createClient, type Interceptor, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";

/** The wire protocols a behaviour suite is run over. */
export type Protocol = "connect-json" | "connect-binary" | "grpc-web" | "grpc";
export const protocols: Protocol[] = ["connect-json", "connect-binary", "grpc-web", "grpc"];

/**
 * A transport of the given protocol to a test server. gRPC goes over
 * cleartext HTTP/2 with prior knowledge; Connect and gRPC-Web over HTTP/1.1,
 * as browsers and scripts use them.
 */
export function transportFor(protocol: Protocol, baseUrl: string, token?: string): Transport {
  const interceptors: Interceptor[] = token
    ? [(next) => (req) => { req.header.set("authorization", `Bearer ${token}`); return next(req); }]
    : [];
  switch (protocol) {
    case "connect-json":
      return createConnectTransport({ baseUrl, httpVersion: "1.1", useBinaryFormat: false, interceptors });
    case "connect-binary":
      return createConnectTransport({ baseUrl, httpVersion: "1.1", useBinaryFormat: true, interceptors });
    case "grpc-web":
      return createGrpcWebTransport({ baseUrl, httpVersion: "1.1", interceptors });
    case "grpc":
      return createGrpcTransport({ baseUrl, interceptors });
  }
}

/** A typed client for `service` over `protocol`, authenticated with `token`. */
export function clientFor<S extends DescService>(service: S, protocol: Protocol, baseUrl: string, token?: string): Client<S> {
  return createClient(service, transportFor(protocol, baseUrl, token));
}
