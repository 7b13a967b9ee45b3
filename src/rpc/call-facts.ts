import type { DescMethod } from "@bufbuild/protobuf";
import type { HeaderSource } from "../auth/authenticator.js";

/** What an audit event says about a call besides who made it and how it ended. */
export interface CallFacts {
  /** `package.Service/Method`. */
  readonly method: string;
  readonly protocol: string;
  readonly requestId: string;
  readonly traceId: string;
  readonly clientAddress: string;
  readonly userAgent: string;
}

/** A method's name in audit events and filters: `package.Service/Method`. */
export function methodName(method: DescMethod): string {
  return `${method.parent.typeName}/${method.name}`;
}

/** The protocol of a call to connect's routes, from its content type (REST says so itself). */
export function protocolOf(headers: HeaderSource): string {
  const type = header(headers, "content-type") ?? "";
  if (type.startsWith("application/grpc-web")) return "grpc-web";
  if (type.startsWith("application/grpc")) return "grpc";
  return "connect";
}

const traceparent = /^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}/;

/** The W3C trace id of a `traceparent` header, or "" (none, malformed, or the all-zero invalid id). */
export function traceIdOf(headers: HeaderSource): string {
  const id = traceparent.exec(header(headers, "traceparent")?.trim().toLowerCase() ?? "")?.[1];
  return id === undefined || /^0+$/.test(id) ? "" : id;
}

/** The `User-Agent`, bounded: a client sets it at will. */
export function userAgentOf(headers: HeaderSource): string {
  return (header(headers, "user-agent") ?? "").slice(0, 512);
}

export function header(headers: HeaderSource, name: string): string | undefined {
  const value = typeof headers.get === "function" ? (headers as { get(n: string): string | null }).get(name) : (headers as Record<string, string | string[] | undefined>)[name];
  if (value === null || value === undefined) return undefined;
  return Array.isArray(value) ? value[0] : (value as string);
}
