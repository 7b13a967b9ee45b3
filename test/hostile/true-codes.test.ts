import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { OperationService } from "../../gen/anvil/operations/v1/operations_pb.js";
import { UserService } from "../../gen/anvil/users/v1/users_pb.js";
import { WorkflowService } from "../../gen/anvil/workflows/v1/workflows_pb.js";
import { clientFor } from "../support/clients.js";
import { databaseKinds } from "../support/databases.js";
import { expectCode } from "../support/expect-code.js";
import { operationClients, runWorkflow } from "../support/operations.js";
import { startServer, type TestServer } from "../support/server.js";

/**
 * Every failure keeps its true code: numbers a column cannot hold are the
 * caller's mistake (INVALID_ARGUMENT), not a database error (INTERNAL).
 */
describe.each(databaseKinds)("true codes on %s", (kind) => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startServer(kind);
  });
  afterAll(() => server?.close());

  it.each(['"v2147483648"', '"v999999999999999"'])("an etag with a version out of range (%s) is INVALID_ARGUMENT and changes nothing", async (etag) => {
    const users = clientFor(UserService, "connect-json", server.baseUrl, await server.token());
    const user = (await users.createUser({ user: { email: `range-${etag.length}@example.com`, displayName: "r", roles: ["viewer"] } })).user!;
    const err = await expectCode(users.updateUser({ user: { id: user.id, displayName: "changed", etag }, updateMask: { paths: ["display_name"] } }), Code.InvalidArgument);
    expect(err.rawMessage).toMatch(/etag/);
    await expectCode(users.deleteUser({ id: user.id, etag }), Code.InvalidArgument);
    const workflows = clientFor(WorkflowService, "connect-json", server.baseUrl, await server.token());
    await expectCode(workflows.deleteWorkflow({ id: user.id, etag }), Code.InvalidArgument);
    expect((await users.getUser({ id: user.id })).user!.displayName).toBe("r");
  });

  it.each([2n ** 31n, 2n ** 53n + 1n, 2n ** 63n - 1n])("a watch after sequence %s is INVALID_ARGUMENT", async (afterSequence) => {
    const c = await operationClients(server);
    const op = await runWorkflow(c, [{ name: "only", kind: "range" }]);
    const operations = clientFor(OperationService, "grpc", server.baseUrl, await server.token("acme-editor"));
    const err = await expectCode(operations.watchOperation({ id: op.id, afterSequence })[Symbol.asyncIterator]().next(), Code.InvalidArgument);
    expect(err.rawMessage).toMatch(/after_sequence/);
  });
});
