import { Ipa_State } from "../../gen/anvil/ipas/v1/ipas_pb.js";

/** An IPA's state in words. */
export const ipaStateLabels: Readonly<Record<Ipa_State, string>> = {
  [Ipa_State.UNSPECIFIED]: "Unknown",
  [Ipa_State.DRAFT]: "Draft",
  [Ipa_State.DEPLOYED]: "Deployed",
  [Ipa_State.RETIRED]: "Retired",
};
