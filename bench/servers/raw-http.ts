import http from "node:http";
import { contextFromEnv } from "../protocol/context.js";
import { fixedAnswers } from "./fixed-answers.js";
import { serve } from "./serve.js";

/**
 * The HTTP/1.1 ceiling: node:http answering the same bytes Anvil answers
 * (GetUser as Connect JSON, /healthz) without doing any of the work. Nothing
 * on node:http can be faster than this on this machine.
 */
serve("raw-http", async (port) => {
  const answers = await fixedAnswers(contextFromEnv());
  const server = http.createServer({ keepAliveTimeout: 65_000 }, (req, res) => {
    const path = req.url ?? "";
    // Read the request to its end, as a real server must, before answering.
    req.resume();
    req.on("end", () => {
      const body = path === "/healthz" ? answers.healthz : path === "/anvil.users.v1.UserService/GetUser" ? answers.getUserJson : undefined;
      if (!body) {
        res.writeHead(404).end();
        return;
      }
      res.writeHead(200, { "content-type": "application/json", "content-length": body.length });
      res.end(body);
    });
  });
  await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
  return {
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
});
