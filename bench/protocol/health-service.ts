import { create, createFileRegistry, type DescMessage, type DescService } from "@bufbuild/protobuf";
import {
  FieldDescriptorProto_Label as Label,
  FieldDescriptorProto_Type as Type,
  FileDescriptorProtoSchema,
} from "@bufbuild/protobuf/wkt";

/**
 * `grpc.health.v1.Health`, described in code so the protocol-overhead
 * workload has an RPC that touches no database for the peers (bare
 * connect-node, grpc-js, raw HTTP/2) without depending on generated code
 * Anvil may or may not ship yet. Anvil is measured on it when it serves it.
 */
const registry = createFileRegistry(
  create(FileDescriptorProtoSchema, {
    name: "bench/grpc/health/v1/health.proto",
    package: "grpc.health.v1",
    syntax: "proto3",
    messageType: [
      {
        name: "HealthCheckRequest",
        field: [{ name: "service", jsonName: "service", number: 1, type: Type.STRING, label: Label.OPTIONAL }],
      },
      {
        name: "HealthCheckResponse",
        field: [
          {
            name: "status",
            jsonName: "status",
            number: 1,
            type: Type.ENUM,
            typeName: ".grpc.health.v1.HealthCheckResponse.ServingStatus",
            label: Label.OPTIONAL,
          },
        ],
        enumType: [
          {
            name: "ServingStatus",
            value: [
              { name: "UNKNOWN", number: 0 },
              { name: "SERVING", number: 1 },
              { name: "NOT_SERVING", number: 2 },
              { name: "SERVICE_UNKNOWN", number: 3 },
            ],
          },
        ],
      },
    ],
    service: [
      {
        name: "Health",
        method: [{ name: "Check", inputType: ".grpc.health.v1.HealthCheckRequest", outputType: ".grpc.health.v1.HealthCheckResponse" }],
      },
    ],
  }),
  () => undefined,
);

/** The Health service descriptor (unary Check only; Watch is not benchmarked). */
export const HealthService: DescService = registry.getService("grpc.health.v1.Health")!;
/** grpc.health.v1.HealthCheckRequest */
export const HealthCheckRequestSchema: DescMessage = registry.getMessage("grpc.health.v1.HealthCheckRequest")!;
/** grpc.health.v1.HealthCheckResponse */
export const HealthCheckResponseSchema: DescMessage = registry.getMessage("grpc.health.v1.HealthCheckResponse")!;
/** HealthCheckResponse.ServingStatus.SERVING */
export const serving = 1;
