import { jsonCodec } from "../db/idempotency.repository.js";
import type { Operation } from "./operation.js";

/** How a start's operation is stored for replay by `request_id` (tx.idempotency.run). */
export const operationCodec = jsonCodec<Operation>("createTime", "updateTime", "startTime", "endTime");
