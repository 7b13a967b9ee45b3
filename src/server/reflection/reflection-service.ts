import { type DescService, fromBinary, toBinary } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import * as v1 from "../../../gen/grpc/reflection/v1/reflection_pb.js";
import * as v1alpha from "../../../gen/grpc/reflection/v1alpha/reflection_pb.js";
import { answerReflection } from "./reflection-answers.js";
import { createDescriptorIndex } from "./descriptor-index.js";

/** Both reflection services: v1, and v1alpha which older grpcurl and clients still ask for. */
export const reflectionServices = [v1.ServerReflection, v1alpha.ServerReflection] as const;

/** Handlers of `grpc.reflection.v1` and `v1alpha` over the descriptors of `served`. */
export interface ReflectionHandlers {
  readonly v1: ServiceImpl<typeof v1.ServerReflection>;
  readonly v1alpha: ServiceImpl<typeof v1alpha.ServerReflection>;
}

/**
 * Serves reflection from the generated descriptors of the services the
 * gateway serves (and their imports), so `grpcurl` and `buf curl` need no
 * proto files. Each stream remembers which files it has already sent.
 */
export function createReflectionHandlers(served: readonly DescService[]): ReflectionHandlers {
  const index = createDescriptorIndex(served);
  return {
    v1: {
      async *serverReflectionInfo(requests) {
        const sent = new Set<string>();
        for await (const request of requests) yield answerReflection(index, request, sent);
      },
    },
    // v1alpha is wire-identical to v1: translate through the binary form.
    v1alpha: {
      async *serverReflectionInfo(requests) {
        const sent = new Set<string>();
        for await (const request of requests) {
          const answer = answerReflection(index, fromBinary(v1.ServerReflectionRequestSchema, toBinary(v1alpha.ServerReflectionRequestSchema, request)), sent);
          yield fromBinary(v1alpha.ServerReflectionResponseSchema, toBinary(v1.ServerReflectionResponseSchema, answer));
        }
      },
    },
  };
}
