import { useSyncExternalStore } from "react";

/**
 * The signed-in credential: an API key (`anvil_…`) or a bearer token, kept in
 * sessionStorage so that it lives as long as the tab, and sent as the
 * Authorization header by the transport (transport.ts) — never in a URL.
 */
const storageKey = "anvil.console.credential";
const listeners = new Set<() => void>();

/** The credential of this tab, or undefined when signed out. */
export function credential(): string | undefined {
  return sessionStorage.getItem(storageKey) ?? undefined;
}

/** Remembers the credential for this tab and re-renders whoever reads it. */
export function signIn(value: string): void {
  sessionStorage.setItem(storageKey, value.trim());
  listeners.forEach((l) => l());
}

/** Forgets the credential. */
export function signOut(): void {
  sessionStorage.removeItem(storageKey);
  listeners.forEach((l) => l());
}

/**
 * Calls `listener` whenever the credential changes, before React re-renders
 * (main.tsx clears the query cache there: a new credential is a new person).
 */
export function onCredentialChange(listener: () => void): void {
  listeners.add(listener);
}

/** The current credential as React state. */
export function useCredential(): string | undefined {
  return useSyncExternalStore(
    (listener) => {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    credential,
  );
}
