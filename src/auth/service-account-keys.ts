import { type Stats, unwatchFile, watchFile } from "node:fs";
import type { Logger } from "pino";
import { type KeyStore, loadKeyStore, type ServiceAccountKey } from "./key-store.js";
import type { KeyLookup } from "./token-verifier.js";

/**
 * The service-account keys of the keys file, as last read. Re-read when the
 * file changes (its modification time or size, checked every `pollMs` —
 * polling survives editors that replace the file rather than write it) and
 * on `reload()` (SIGHUP). A file that no longer parses leaves the keys as
 * they were and is logged: a typo must not lock every caller out. Keys
 * removed or changed by a reload are reported to `onChange` listeners, so
 * caches of tokens they signed are dropped; unchanged keys keep their
 * identity, and their tokens stay cached.
 */
export class ServiceAccountKeys implements KeyLookup {
  readonly #file: string;
  readonly #log: Logger;
  readonly #listeners: Array<(keyIds: readonly string[]) => void> = [];
  #current: KeyStore;
  /** What watch() registered: close() removes this listener only, not another instance's of the same file. */
  #watcher: ((now: Stats, before: Stats) => void) | undefined;

  constructor(file: string, createIfMissing: boolean, log: Logger) {
    this.#file = file;
    this.#log = log;
    this.#current = loadKeyStore(file, createIfMissing);
  }

  get(keyId: string): ServiceAccountKey | undefined {
    return this.#current.get(keyId);
  }

  values(): IterableIterator<ServiceAccountKey> {
    return this.#current.values();
  }

  /** Calls `listener` with the ids of keys a reload removed or changed. */
  onChange(listener: (keyIds: readonly string[]) => void): void {
    this.#listeners.push(listener);
  }

  /** Re-reads the file now. Returns whether it was read (false: it did not parse, the old keys stay). */
  reload(): boolean {
    let next: Map<string, ServiceAccountKey>;
    try {
      next = new Map(loadKeyStore(this.#file, false));
    } catch (err) {
      this.#log.error({ err: err instanceof Error ? err.message : String(err), file: this.#file }, "keys file not reloaded; keeping the keys loaded before");
      return false;
    }
    const gone: string[] = [];
    for (const [id, old] of this.#current) {
      const fresh = next.get(id);
      if (fresh !== undefined && sameKey(old, fresh)) next.set(id, old);
      else gone.push(id);
    }
    this.#current = next;
    if (gone.length > 0) for (const listener of this.#listeners) listener(gone);
    this.#log.info({ file: this.#file, keys: next.size, removed_or_changed: gone }, "keys file reloaded");
    return true;
  }

  /** Starts re-reading the file whenever it changes. */
  watch(pollMs: number): void {
    if (this.#watcher !== undefined) return;
    this.#watcher = (now, before) => {
      // Stryker disable next-line ConditionalExpression: equivalent but for cost: node calls this on any stat change (an access); reloading an unchanged file changes no key and tells no listener
      if (now.mtimeMs !== before.mtimeMs || now.size !== before.size || now.ino !== before.ino) this.reload();
    };
    watchFile(this.#file, { interval: pollMs, persistent: false }, this.#watcher);
  }

  close(): void {
    if (this.#watcher !== undefined) unwatchFile(this.#file, this.#watcher);
    this.#watcher = undefined;
  }
}

function sameKey(a: ServiceAccountKey, b: ServiceAccountKey): boolean {
  return (
    a.principal === b.principal &&
    a.tenant === b.tenant &&
    a.tier === b.tier &&
    a.roles.join(",") === b.roles.join(",") &&
    Buffer.compare(a.secretBytes, b.secretBytes) === 0 &&
    (a.expiresAt?.getTime() ?? null) === (b.expiresAt?.getTime() ?? null)
  );
}
