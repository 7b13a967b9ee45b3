import http2 from "node:http2";
import { contextFromEnv } from "../protocol/context.js";
import { fixedAnswers } from "./fixed-answers.js";
import { serve } from "./serve.js";

/**
 * The HTTP/2 ceiling: node:http2's stream API answering the same gRPC bytes
 * (GetUser, Health/Check, with grpc-status trailers) and /healthz, without
 * doing any of the work.
 */
serve("raw-http2", async (port) => {
  const answers = await fixedAnswers(contextFromEnv());
  const server = http2.createServer({ settings: { maxConcurrentStreams: 1000 } });
  server.on("stream", (stream, headers) => {
    const path = headers[":path"];
    stream.on("error", () => {});
    stream.resume();
    stream.on("end", () => {
      if (path === "/healthz") {
        stream.respond({ ":status": 200, "content-type": "application/json" });
        stream.end(answers.healthz);
        return;
      }
      const body =
        path === "/anvil.users.v1.UserService/GetUser" ? answers.getUserGrpc : path === "/grpc.health.v1.Health/Check" ? answers.healthGrpc : undefined;
      if (!body) {
        stream.respond({ ":status": 404 }, { endStream: true });
        return;
      }
      stream.respond({ ":status": 200, "content-type": "application/grpc" }, { waitForTrailers: true });
      stream.on("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0" }));
      stream.end(body);
    });
  });
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on("session", (s) => {
    sessions.add(s);
    s.once("close", () => sessions.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
  return {
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of sessions) s.destroy();
      }),
  };
});
