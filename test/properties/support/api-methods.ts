import type { DescMethod } from "@bufbuild/protobuf";
import { apiServices } from "../../../src/server/services.js";

/** `UserService.GetUser`: how reports name a method. */
export const nameOf = (m: DescMethod): string => `${m.parent.name}.${m.name}`;

/** Every method of every API service the gateway registers, from the descriptors. */
export const apiMethods: readonly DescMethod[] = apiServices.flatMap((s) => s.methods);

/** The API method called `name` (method names are unique across Anvil's services), if the gateway serves one. */
export function methodNamed(name: string): DescMethod | undefined {
  return apiMethods.find((m) => m.name === name);
}
