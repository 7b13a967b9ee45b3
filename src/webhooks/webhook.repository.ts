import { randomUUID } from "node:crypto";
import type { Selectable, Transaction } from "kysely";
import { credentialName } from "../auth/principal.js";
import { creationOrder } from "../db/creation-order.js";
import type { Database } from "../db/schema.js";
import { ScopedTable } from "../db/scoped-table.js";
import { InternalError } from "../shared/errors.js";
import type { NewWebhook, Webhook, WebhookOwner, WebhookPatch, WebhookTarget } from "./webhook.js";
import type { WebhookTable } from "./webhook.table.js";
import { newSigningKey } from "./webhook-secret.js";

/** Queries over `webhooks`, within one transaction and one tenant; creates need the owner (`ownedBy`). */
export class WebhookRepository {
  readonly #trx: Transaction<Database>;
  readonly #table: ScopedTable<"webhooks">;
  readonly #owner: WebhookOwner | undefined;

  constructor(trx: Transaction<Database>, tenant: string, owner?: WebhookOwner) {
    this.#trx = trx;
    this.#table = new ScopedTable(trx, tenant, "webhooks", "webhook");
    this.#owner = owner;
  }

  /** The same repository, creating endpoints that act as `owner`. */
  ownedBy(owner: WebhookOwner): WebhookRepository {
    return new WebhookRepository(this.#trx, this.#table.tenant, owner);
  }

  async get(id: string): Promise<Webhook> {
    return toWebhook(await this.#table.get(id));
  }

  /** Up to `limit` endpoints after the keyset position `after` ([create_time, id]). */
  async list(limit: number, after: readonly unknown[] | undefined): Promise<Webhook[]> {
    return (await this.#table.list(creationOrder, limit, after)).map(toWebhook);
  }

  /** Stores a new endpoint and returns it with its secret, the only time the secret leaves the gateway. */
  async create(input: NewWebhook): Promise<Webhook> {
    const owner = this.#owner;
    if (owner === undefined || input.target === undefined) throw new InternalError("webhook created without an owner or a target");
    const { key, secret } = newSigningKey();
    const row = await this.#table.insert({
      id: randomUUID(),
      display_name: input.displayName,
      ...targetColumns(input.target),
      signing_key: key,
      creator: credentialName(owner.credential),
      creator_roles: [...owner.roles],
      creator_tier: owner.tier,
    });
    return { ...toWebhook(row), secret };
  }

  /** Applies `patch`; when `expectedVersion` is given, only to that version. */
  async update(id: string, patch: WebhookPatch, expectedVersion: number | undefined): Promise<Webhook> {
    const values = {
      // Stryker disable next-line ConditionalExpression: 'always' is equivalent (kysely leaves a column set to undefined out of an update); 'never', on the same line, is what the update tests kill
      ...(patch.displayName !== undefined && { display_name: patch.displayName }),
      ...(patch.target !== undefined && targetColumns(patch.target)),
    };
    return toWebhook(await this.#table.update(id, values, expectedVersion));
  }

  delete(id: string, expectedVersion: number | undefined): Promise<void> {
    return this.#table.delete(id, expectedVersion);
  }
}

function targetColumns(target: WebhookTarget): Pick<WebhookTable, "target_kind" | "target_id" | "max_results"> {
  switch (target.kind) {
    case "run_workflow":
      return { target_kind: target.kind, target_id: target.workflowId, max_results: 0 };
    case "execute_ipa":
      return { target_kind: target.kind, target_id: target.ipaId, max_results: 0 };
    case "correlate_alert":
      return { target_kind: target.kind, target_id: null, max_results: target.maxResults };
  }
}

/** The target a row stores. */
export function targetOf(row: Pick<WebhookTable, "target_kind" | "target_id" | "max_results">): WebhookTarget {
  switch (row.target_kind) {
    case "run_workflow":
      return { kind: "run_workflow", workflowId: row.target_id ?? "" };
    case "execute_ipa":
      return { kind: "execute_ipa", ipaId: row.target_id ?? "" };
    case "correlate_alert":
      return { kind: "correlate_alert", maxResults: row.max_results };
    default:
      throw new InternalError(`webhook with unknown target kind ${row.target_kind}`);
  }
}

function toWebhook(row: Selectable<WebhookTable>): Webhook {
  return {
    id: row.id,
    displayName: row.display_name,
    target: targetOf(row),
    creator: row.creator,
    version: row.version,
    createTime: row.create_time,
    updateTime: row.update_time,
  };
}
