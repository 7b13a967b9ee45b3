import { useQuery } from "@connectrpc/connect-query";
import { createContext, type ReactNode, useContext } from "react";
import { type Caller, IdentityService } from "../../gen/anvil/identity/v1/identity_pb.js";

const CallerContext = createContext<Caller | undefined>(undefined);

/** Who is signed in, from IdentityService.GetCaller (the gateway's view of the credential). */
export function useCallerQuery() {
  return useQuery(IdentityService.method.getCaller, {}, { staleTime: 60_000 });
}

/** Makes the signed-in caller available to every page. */
export function CallerProvider({ caller, children }: { caller: Caller; children: ReactNode }) {
  return <CallerContext.Provider value={caller}>{children}</CallerContext.Provider>;
}

/** Whether the signed-in caller's roles grant `permission` (the gateway enforces it regardless). */
export function useCan(permission: string): boolean {
  return useContext(CallerContext)?.permissions.includes(permission) ?? false;
}

/** Renders its children only for callers who hold `permission`: actions a role cannot take are not offered. */
export function Can({ permission, children }: { permission: string; children: ReactNode }) {
  return useCan(permission) ? <>{children}</> : null;
}
