import { create } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import {
  Health,
  HealthCheckResponse_ServingStatus as Status,
  HealthCheckResponseSchema,
} from "../../../gen/grpc/health/v1/health_pb.js";
import { NotFoundError } from "../../shared/errors.js";
import type { ServingMonitor } from "./serving-monitor.js";

/**
 * `grpc.health.v1.Health` as the health-checking spec describes it: "" is
 * the whole server, and every served service is known by its full name.
 * All share one state — every service needs the database and stops with
 * the process — so a service's status is the server's.
 */
export function createHealthHandler(serviceNames: readonly string[], monitor: ServingMonitor): ServiceImpl<typeof Health> {
  const known = new Set(["", ...serviceNames]);
  const status = (serving: boolean) => create(HealthCheckResponseSchema, { status: serving ? Status.SERVING : Status.NOT_SERVING });
  return {
    async check(req) {
      if (!known.has(req.service)) throw new NotFoundError("service", req.service);
      return status(await monitor.serving());
    },
    async *watch(req, ctx) {
      if (!known.has(req.service)) {
        // The spec keeps the call open: the service may become known later.
        yield create(HealthCheckResponseSchema, { status: Status.SERVICE_UNKNOWN });
        if (!ctx.signal.aborted) await new Promise((resolve) => ctx.signal.addEventListener("abort", resolve, { once: true }));
        // Ends with why it ended (its deadline, most likely), never with OK.
        throw ctx.signal.reason;
      }
      for await (const serving of monitor.changes(ctx.signal)) yield status(serving);
    },
    async list() {
      const current = status(await monitor.serving());
      return { statuses: Object.fromEntries([...known].map((name) => [name, current])) };
    },
  };
}
