import type { ResultCodec } from "../db/idempotency.repository.js";
import { idempotencyKey } from "../db/idempotency-key.js";
import type { UnitOfWork } from "../db/unit-of-work.js";
import type { Scope } from "../shared/scope.js";

const asIs: ResultCodec<unknown> = { toJson: (v) => v, fromJson: (v) => v };

/**
 * Remembers the answers of deliveries whose target starts nothing (alert
 * correlation): the first answer recorded for a delivery is the one every
 * replay gets. Deliveries that start an operation need no record of their
 * own: they run the target with the delivery's request id, whose
 * idempotency record already returns the first operation.
 */
export class WebhookDeliveriesService {
  readonly #uow: UnitOfWork;

  constructor(uow: UnitOfWork) {
    this.#uow = uow;
  }

  /** Records `answer` for the delivery `requestId` of `webhookId` unless one is recorded; returns the recorded one. */
  firstAnswer(scope: Scope, webhookId: string, requestId: string, answer: unknown): Promise<unknown> {
    const key = idempotencyKey("webhooks.deliver", { webhookId }, requestId);
    return this.#uow.transact(scope, (tx) => tx.idempotency.run(key, asIs, async () => answer));
  }
}
