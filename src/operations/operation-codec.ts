import { jsonCodec } from "../db/idempotency.repository.js";
import type { Operation } from "./operation.js";

const stored = jsonCodec<Operation>("createTime", "updateTime", "startTime", "endTime");

/**
 * How a start's operation is stored for replay by `request_id` (tx.idempotency.run).
 * Operations stored before sagas have no `compensations`: they read as none.
 */
export const operationCodec: typeof stored = {
  toJson: stored.toJson,
  fromJson: (json) => {
    const operation = stored.fromJson(json);
    return { ...operation, compensations: operation.compensations ?? [] };
  },
};
