import type { MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError, type Client } from "@connectrpc/connect";
import { type Context, context } from "@opentelemetry/api";
import { type CompleteTaskRequestSchema, Operation_State, type WorkerService } from "../../gen/anvil/operations/v1/operations_pb.js";

/** A completion as CompleteTask takes it. */
export type CompletionRequest = MessageInitShape<typeof CompleteTaskRequestSchema> & { readonly taskId: string };

/** How a completion went: the operation's state afterwards, or why the gateway refused it. */
export type CompletionAnswer =
  | { readonly operationId: string; readonly state: Operation_State }
  | { readonly refused: string };

/** Most completions in one BatchCompleteTasks (the gateway's bound). */
const maxBatch = 100;

interface Pending {
  readonly request: CompletionRequest;
  /** The task's trace context: a completion sent alone is sent in it. */
  readonly context: Context;
  resolve(answer: CompletionAnswer): void;
  reject(err: unknown): void;
}

/**
 * Reports completions in batches without making any of them wait: a
 * completion goes at once when nothing is on its way; those that arrive
 * while a call is on its way gather and go together in the next
 * BatchCompleteTasks (up to 100). A lone completion goes as CompleteTask,
 * inside its task's trace. Each is fenced by its own lease on the gateway,
 * so one lost lease refuses only its own task.
 */
export class CompletionBatcher {
  readonly #client: Client<typeof WorkerService>;
  readonly #queue: Pending[] = [];
  #sending = false;
  /** Set once the gateway answered BatchCompleteTasks with UNIMPLEMENTED (an older gateway). */
  #singleOnly = false;

  constructor(client: Client<typeof WorkerService>) {
    this.#client = client;
  }

  /** Resolves once the gateway recorded (or refused) the completion; rejects when the call failed. */
  complete(request: CompletionRequest): Promise<CompletionAnswer> {
    return new Promise((resolve, reject) => {
      this.#queue.push({ request, context: context.active(), resolve, reject });
      void this.#drain();
    });
  }

  async #drain(): Promise<void> {
    if (this.#sending) return;
    this.#sending = true;
    try {
      while (this.#queue.length > 0) await this.#send(this.#queue.splice(0, maxBatch));
    } finally {
      this.#sending = false;
    }
  }

  async #send(batch: Pending[]): Promise<void> {
    if (batch.length > 1 && !this.#singleOnly) {
      try {
        const { results } = await this.#client.batchCompleteTasks({ requests: batch.map((p) => p.request) });
        batch.forEach((p, i) => {
          const r = results[i];
          if (r === undefined) p.reject(new Error("the gateway answered fewer completions than it was sent"));
          else p.resolve(r.error ? { refused: `${r.reason || "refused"}: ${r.error.message}` } : { operationId: r.operationId, state: r.operationState });
        });
        return;
      } catch (err) {
        const code = ConnectError.from(err).code;
        // INVALID_ARGUMENT: one item the gateway refuses (a result too deep) must not sink the others.
        if (code !== Code.Unimplemented && code !== Code.InvalidArgument) {
          batch.forEach((p) => p.reject(err));
          return;
        }
        if (code === Code.Unimplemented) this.#singleOnly = true;
      }
    }
    await Promise.all(batch.map((p) => this.#sendOne(p)));
  }

  async #sendOne(p: Pending): Promise<void> {
    try {
      const done = await context.with(p.context, () => this.#client.completeTask(p.request));
      p.resolve({ operationId: done.operation?.id ?? "", state: done.operation?.state ?? Operation_State.UNSPECIFIED });
    } catch (err) {
      const failure = ConnectError.from(err);
      if (failure.code === Code.FailedPrecondition || failure.code === Code.NotFound) p.resolve({ refused: failure.rawMessage });
      else p.reject(err);
    }
  }
}
