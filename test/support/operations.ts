import { create, fromBinary, type Message, toBinary, toJsonString } from "@bufbuild/protobuf";
import type { Client } from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";
import {
  type Operation,
  OperationEventSchema,
  OperationService,
  type Task,
  WatchOperationRequestSchema,
  type WatchOperationResponse,
  WorkerService,
} from "../../gen/anvil/operations/v1/operations_pb.js";
import { Workflow_State, WorkflowService } from "../../gen/anvil/workflows/v1/workflows_pb.js";
import { clientFor, type Protocol } from "./clients.js";
import type { TestServer } from "./server.js";

/** A step of a test workflow. */
export interface TestStep {
  readonly name: string;
  readonly kind?: string;
  readonly dependsOn?: string[];
  readonly config?: Record<string, string | number | boolean>;
  /** The step's compensation (a saga step). */
  readonly compensation?: { readonly kind: string; readonly config?: Record<string, string | number | boolean>; readonly maxAttempts?: number };
}

/** Clients of one test server for an editor, a viewer and a worker. */
export interface OperationClients {
  readonly workflows: Client<typeof WorkflowService>;
  readonly operations: Client<typeof OperationService>;
  readonly workers: Client<typeof WorkerService>;
}

export async function operationClients(server: TestServer, protocol: Protocol = "connect-json"): Promise<OperationClients> {
  const editor = await server.token("acme-editor");
  return {
    workflows: clientFor(WorkflowService, protocol, server.baseUrl, editor),
    operations: clientFor(OperationService, protocol, server.baseUrl, editor),
    workers: clientFor(WorkerService, protocol, server.baseUrl, await server.token("acme-worker")),
  };
}

/** Creates an active workflow of `steps` (default: one `demo` step) and runs it. */
export async function runWorkflow(c: OperationClients, steps: TestStep[] = [{ name: "only" }], requestId?: string): Promise<Operation> {
  const workflow = (
    await c.workflows.createWorkflow({
      workflow: {
        displayName: "run",
        state: Workflow_State.ACTIVE,
        steps: steps.map((s) => ({
          name: s.name,
          kind: s.kind ?? "demo",
          dependsOn: s.dependsOn ?? [],
          config: s.config ?? {},
          ...(s.compensation && {
            compensation: { kind: s.compensation.kind, config: s.compensation.config ?? {}, retryPolicy: { maxAttempts: s.compensation.maxAttempts ?? 0 } },
          }),
        })),
      },
    })
  ).workflow!;
  return (await c.workflows.runWorkflow({ id: workflow.id, requestId })).operation!;
}

/** Claims one task of `kinds`, waiting up to `waitMs`; undefined when none came. */
export async function claim(c: OperationClients, workerId: string, options: { kinds?: string[]; waitMs?: number; leaseMs?: number } = {}): Promise<Task | undefined> {
  const ms = (n: number) => ({ seconds: BigInt(Math.floor(n / 1000)), nanos: (n % 1000) * 1e6 });
  const res = await c.workers.claimTask({
    kinds: options.kinds ?? ["demo"],
    workerId,
    maxWait: ms(options.waitMs ?? 5_000),
    ...(options.leaseMs !== undefined && { leaseDuration: ms(options.leaseMs) }),
  });
  return res.task;
}

/** A running watch: what arrived so far, and how it ended. */
export interface Watch {
  readonly messages: WatchOperationResponse[];
  /** Resolves when the stream ends: undefined when it ended normally, the error otherwise. */
  readonly done: Promise<unknown>;
  cancel(): void;
}

/** Watches with a Connect client (any protocol) until the stream ends or cancel() is called. */
export function watchWith(client: Client<typeof OperationService>, id: string, afterSequence = 0): Watch {
  const messages: WatchOperationResponse[] = [];
  const abort = new AbortController();
  const done = (async () => {
    try {
      for await (const m of client.watchOperation({ id, afterSequence: BigInt(afterSequence) }, { signal: abort.signal })) messages.push(m);
      return undefined;
    } catch (err) {
      return err;
    }
  })();
  return { messages, done, cancel: () => abort.abort() };
}

const watchDefinition: grpc.ServiceDefinition = {
  watchOperation: {
    path: `/${OperationService.typeName}/WatchOperation`,
    requestStream: false,
    responseStream: true,
    requestSerialize: (value: Message) => Buffer.from(toBinary(WatchOperationRequestSchema, value as never)),
    requestDeserialize: (bytes: Buffer) => fromBinary(WatchOperationRequestSchema, bytes),
    responseSerialize: (value: Message) => Buffer.from(toBinary(OperationService.method.watchOperation.output, value as never)),
    responseDeserialize: (bytes: Buffer) => fromBinary(OperationService.method.watchOperation.output, bytes),
  },
};
const GrpcJsOperations = grpc.makeGenericClientConstructor(watchDefinition, "OperationService");

/** Watches with @grpc/grpc-js: its own HTTP/2 stack, protobuf-es serializers. */
export function watchWithGrpcJs(port: number, token: string, id: string, afterSequence = 0): Watch {
  const client = new GrpcJsOperations(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  const md = new grpc.Metadata();
  md.set("authorization", `Bearer ${token}`);
  const request = create(WatchOperationRequestSchema, { id, afterSequence: BigInt(afterSequence) });
  const call = (client as unknown as Record<string, (r: Message, m: grpc.Metadata) => grpc.ClientReadableStream<WatchOperationResponse>>)
    .watchOperation!.call(client, request, md);
  const messages: WatchOperationResponse[] = [];
  call.on("data", (m: WatchOperationResponse) => messages.push(m));
  call.on("error", () => undefined);
  const done = new Promise<unknown>((resolve) =>
    call.on("status", (s: grpc.StatusObject) => {
      client.close();
      resolve(s.code === grpc.status.OK ? undefined : new Error(`${grpc.status[s.code]}: ${s.details}`));
    }),
  );
  return { messages, done, cancel: () => call.cancel() };
}

/** The events of a watch (keep-alives and the leading operation left out), as comparable JSON. */
export function eventsOf(messages: readonly WatchOperationResponse[]): string[] {
  return messages.flatMap((m) => (m.item.case === "event" ? [toJsonString(OperationEventSchema, m.item.value)] : []));
}

/** Sequence numbers of a watch's events. */
export function sequencesOf(messages: readonly WatchOperationResponse[]): number[] {
  return messages.flatMap((m) => (m.item.case === "event" ? [Number(m.item.value.sequence)] : []));
}

/** Waits until `condition` holds, checking every 20 ms, failing after `timeoutMs`. */
export async function until(condition: () => boolean | Promise<boolean>, timeoutMs = 10_000, what = "condition"): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * Waits until `count` ClaimTask calls are waiting on `server` (its
 * `anvil_operations_claim_waits` gauge), so a test that needs workers already
 * waiting proves it instead of sleeping and hoping the machine kept up.
 */
export async function untilClaimsWait(server: TestServer, count: number, timeoutMs = 15_000): Promise<void> {
  await until(async () => (await claimWaits(server)) >= count, timeoutMs, `${count} claims waiting`);
}

/** The waiting claims `server` counts (its `anvil_operations_claim_waits` gauge, which StreamTasks' slots share); NaN before the gauge is written. */
export async function claimWaits(server: TestServer): Promise<number> {
  const text = await (await fetch(`${server.baseUrl}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith("anvil_operations_claim_waits "));
  return Number(line?.slice("anvil_operations_claim_waits ".length));
}
