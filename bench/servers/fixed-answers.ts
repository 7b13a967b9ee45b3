import { create, toBinary, toJsonString } from "@bufbuild/protobuf";
import { GetUserResponseSchema } from "../../gen/anvil/users/v1/users_pb.js";
import type { BenchContext } from "../protocol/context.js";
import { envelope } from "../protocol/framing.js";
import { HealthCheckResponseSchema, serving } from "../protocol/health-service.js";
import { PeerStore } from "./peer-store.js";
import { userMessage } from "./user-message.js";

/** The exact bytes the real servers answer with, computed once. */
export interface FixedAnswers {
  readonly healthz: Buffer;
  /** gRPC-framed GetUserResponse. */
  readonly getUserGrpc: Buffer;
  /** Connect JSON GetUserResponse. */
  readonly getUserJson: Buffer;
  /** gRPC-framed HealthCheckResponse{SERVING}. */
  readonly healthGrpc: Buffer;
}

/**
 * Reads the benchmarked user once and encodes the answers, so the raw
 * servers (the ceiling) send the same bytes the real ones do and pass the
 * same checks, without doing the work per request.
 */
export async function fixedAnswers(ctx: BenchContext): Promise<FixedAnswers> {
  const store = new PeerStore(process.env.DATABASE_URL!, ctx.tenant);
  try {
    const row = await store.getUser(ctx.userId);
    if (!row) throw new Error(`user ${ctx.userId} not found`);
    const response = create(GetUserResponseSchema, { user: userMessage(row) });
    return {
      healthz: Buffer.from(JSON.stringify({ status: "ok" })),
      getUserGrpc: envelope(toBinary(GetUserResponseSchema, response)),
      getUserJson: Buffer.from(toJsonString(GetUserResponseSchema, response)),
      healthGrpc: envelope(toBinary(HealthCheckResponseSchema, create(HealthCheckResponseSchema, { status: serving } as never))),
    };
  } finally {
    await store.close();
  }
}
