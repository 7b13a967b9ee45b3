import type { ColumnType } from "kysely";

/** Row type of `webhooks`. */
export interface WebhookTable {
  tenant_id: string;
  id: string;
  display_name: string;
  /** `run_workflow`, `execute_ipa` or `correlate_alert`. */
  target_kind: string;
  /** The workflow or IPA a delivery starts; null for alert correlation. */
  target_id: string | null;
  /** Alert correlation's default `max_results`; 0 for other targets. */
  max_results: number;
  /** The HMAC key (the 32 bytes `whsec_` encodes): kept, since verifying a signature needs it. */
  signing_key: Buffer;
  /** `kind:id` of the creating credential. */
  creator: string;
  /** The creator's roles and tier at creation: the most deliveries act with (each delivery rechecks the credential, actingCreator). */
  creator_roles: string[];
  creator_tier: string;
  version: ColumnType<number, number | undefined, number>;
  create_time: ColumnType<Date, Date | string | undefined, never>;
  update_time: ColumnType<Date, Date | string | undefined, Date | string>;
}
