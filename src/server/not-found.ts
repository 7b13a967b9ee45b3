import { Code } from "@connectrpc/connect";
import { encodeEnvelope } from "@connectrpc/connect/protocol";
import { trailerSerialize } from "@connectrpc/connect/protocol-grpc-web";
import type { NodeRequest, NodeResponse } from "./connect-handler.js";
import { reencode } from "./grpc-message-encoding.js";
import { writeResponse } from "./fast-unary/write-response.js";

const grpcWebTrailerFlag = 0b10000000;

/**
 * The answer when no route matched. A gRPC or gRPC-Web client cannot read
 * an HTTP 404 with a JSON body; it gets what grpc-go and grpc-java send for
 * an unknown method: HTTP 200 with `grpc-status: 12` (UNIMPLEMENTED) — over
 * gRPC in the trailers, over gRPC-Web in the trailer frame of the body. Every other client (Connect, REST, browsers) gets HTTP 404 JSON.
 * `services` are the served service names, to say which of the two is unknown.
 */
export function createNotFound(services: ReadonlySet<string>): (req: NodeRequest, res: NodeResponse) => void {
  return (req, res) => {
    const path = (req.url ?? "").split("?", 1)[0] ?? "";
    const contentType = req.headers["content-type"] ?? "";
    if (!contentType.startsWith("application/grpc")) {
      res.writeHead(404, { "content-type": "application/json" });
      res.end(JSON.stringify({ code: "not_found", message: `no route for ${req.method} ${path}` }));
      return;
    }
    const status = new Headers({ "grpc-status": String(Code.Unimplemented), "grpc-message": unknownMessage(path, services) });
    reencode(status);
    if (!contentType.startsWith("application/grpc-web")) {
      // Status in trailers, as connect sends every gRPC error: a header
      // block without END_STREAM followed by the stream's reset reads to
      // grpc-js as "ended without gRPC status".
      writeResponse(res, 200, new Headers({ "content-type": contentType }), undefined, status);
      return;
    }
    let frame: Uint8Array = encodeEnvelope(grpcWebTrailerFlag, trailerSerialize(status));
    // gRPC-Web text carries the whole body in base64.
    if (contentType.startsWith("application/grpc-web-text")) frame = Buffer.from(Buffer.from(frame).toString("base64"));
    res.writeHead(200, { "content-type": contentType, "content-length": String(frame.byteLength) });
    res.end(frame);
  };
}

/** grpc-go's words for an unknown service or method. */
function unknownMessage(path: string, services: ReadonlySet<string>): string {
  const slash = path.lastIndexOf("/");
  const service = path.slice(1, Math.max(1, slash));
  const method = path.slice(slash + 1);
  return services.has(service) ? `unknown method ${method} for service ${service}` : `unknown service ${service}`;
}
