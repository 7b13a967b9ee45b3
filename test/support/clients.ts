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
export function transportFor(protocol: Protocol, baseUrl: string, token?: string | Readonly<Record<string, string>>): Transport {
  // A string is a bearer token; an object, headers sent verbatim (an API key as `x-api-key`).
  const headers = typeof token === "string" ? { authorization: `Bearer ${token}` } : (token ?? {});
  const interceptors: Interceptor[] =
    Object.keys(headers).length > 0
      ? [(next) => (req) => { for (const [k, v] of Object.entries(headers)) req.header.set(k, v); return next(req); }]
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

/** A typed client for `service` over `protocol`, authenticated with `token` (or the headers given). */
export function clientFor<S extends DescService>(service: S, protocol: Protocol, baseUrl: string, token?: string | Readonly<Record<string, string>>): Client<S> {
  return createClient(service, transportFor(protocol, baseUrl, token));
}
