import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { databaseKinds } from "./support/databases.js";
import { startServer, type TestServer } from "./support/server.js";

/**
 * A REST query string whose percent-encoded bytes are not UTF-8 is refused
 * with INVALID_ARGUMENT, as a body that is not UTF-8 is (found by the
 * fuzzer: URLSearchParams decoded it with U+FFFD and the request went on).
 */
describe.each(databaseKinds)("REST query strings (%s)", (kind) => {
  let server: TestServer;
  let token: string;
  beforeAll(async () => {
    server = await startServer(kind);
    token = await server.token("acme-admin");
  });
  afterAll(async () => {
    await server.close();
  });
  const get = async (query: string) => {
    const res = await fetch(`${server.baseUrl}/v1/findings:summary?${query}`, { headers: { authorization: `Bearer ${token}` } });
    return { status: res.status, body: (await res.json()) as { code?: string; message?: string } };
  };

  it.each([
    ["a byte that is not UTF-8", "file_path_prefix=src%FF"],
    ["a UTF-8-encoded surrogate", "file_path_prefix=%ED%A0%80"],
    ["a truncated sequence", "file_path_prefix=%C3"],
    ["a bad parameter name", "file%FF=1"],
  ])("refuses %s with INVALID_ARGUMENT", async (_, query) => {
    const { status, body } = await get(query);
    expect(status).toBe(400);
    expect(body.code).toBe("invalid_argument");
    expect(body.message).toContain("not UTF-8");
  });

  it("still reads UTF-8, `+` as a space, and a stray `%` as written", async () => {
    for (const query of ["file_path_prefix=%C3%A9t%C3%A9", "file_path_prefix=a+b", "file_path_prefix=50%zz", "file_path_prefix="]) {
      expect((await get(query)).status, query).toBe(200);
    }
  });
});
