import type { Logger } from "pino";
import type { CredentialVerifier } from "../auth/authenticator.js";
import type { Principal } from "../auth/principal.js";
import type { DatabaseHandle } from "../db/database.js";
import { UnauthenticatedError } from "../shared/errors.js";
import { type ApiKeyCredentialRepository, type StoredApiKey } from "./api-key-credential.repository.js";
import { apiKeysChannel } from "./api-key.repository.js";
import { type ParsedSecret, parseSecret, sameHash } from "./api-key-secret.js";

/** Options of the ApiKeyVerifier. */
export interface ApiKeyVerifierOptions {
  /**
   * How long a key read from the database is trusted without a
   * notification, in ms: the backstop for a notification that never came.
   */
  readonly cacheMs?: number;
  /** Least interval between two `last_used_time` writes of one key by this instance, in ms. */
  readonly touchEveryMs?: number;
  /** Most keys remembered (known and unknown ids together). */
  readonly maxEntries?: number;
}

interface Entry {
  /** Undefined: no key has this id (remembered too, so a flood of made-up ids costs one read per id). */
  readonly key: StoredApiKey | undefined;
  readonly principal: Principal | undefined;
  readonly loadedAt: number;
}

/**
 * Verifies API keys without a database read per request. Each key's record
 * is read once and kept for `cacheMs`; a revocation or deletion announced on
 * `apiKeysChannel` (by any instance, on commit) drops it at once, and a
 * listener reconnect — notifications may have been lost meanwhile — drops
 * everything. A presented secret is hashed and compared in constant time
 * with the stored hash whenever its key's record is (re)loaded; in between,
 * a secret that matched is recognised by a map lookup, as the token cache
 * recognises a verified JWT, so a key costs no more per call than a token.
 * The record's state (revoked, expired) is checked on every call.
 */
export class ApiKeyVerifier implements CredentialVerifier {
  readonly #keys: ApiKeyCredentialRepository;
  readonly #log: Logger;
  readonly #cacheMs: number;
  readonly #touchEveryMs: number;
  readonly #maxEntries: number;
  readonly #cache = new Map<string, Entry>();
  readonly #loading = new Map<string, Promise<Entry>>();
  readonly #touched = new Map<string, number>();
  /** Secrets that matched their key's stored hash, to the key id. Valid only while that key's entry is. */
  readonly #matched = new Map<string, { readonly keyId: string; readonly entry: Entry }>();
  #unlisten: (() => Promise<void>) | undefined;

  constructor(keys: ApiKeyCredentialRepository, log: Logger, options: ApiKeyVerifierOptions = {}) {
    this.#keys = keys;
    this.#log = log;
    this.#cacheMs = options.cacheMs ?? 10_000;
    this.#touchEveryMs = options.touchEveryMs ?? 60_000;
    this.#maxEntries = options.maxEntries ?? 100_000;
  }

  /** Starts listening for revocations; until then (or if LISTEN fails) only the cache lifetime bounds staleness. */
  async listen(database: DatabaseHandle): Promise<void> {
    this.#unlisten = await database
      .listen(apiKeysChannel, (id) => this.forget(id), () => this.flush())
      .catch((err: unknown) => {
        this.#log.warn({ err: err instanceof Error ? err.message : String(err) }, "cannot LISTEN for API key revocations; relying on the cache lifetime");
        return undefined;
      });
  }

  async close(): Promise<void> {
    await this.#unlisten?.().catch(() => undefined);
  }

  cached(secret: string): Principal | undefined {
    const parsed = parseSecret(secret);
    const entry = parsed === undefined ? undefined : this.#fresh(parsed.keyId);
    if (parsed === undefined || entry === undefined) return undefined;
    try {
      return this.#check(entry, parsed);
    } catch {
      return undefined;
    }
  }

  async verify(secret: string): Promise<Principal> {
    const matched = this.#matched.get(secret);
    // The same entry object: the key was neither reloaded, revoked nor flushed since the secret matched its hash.
    if (matched !== undefined && this.#fresh(matched.keyId) === matched.entry) return this.#checkState(matched.entry);
    const parsed = parseSecret(secret);
    if (parsed === undefined) throw new UnauthenticatedError("not an API key");
    const entry = this.#fresh(parsed.keyId) ?? (await this.#load(parsed.keyId));
    const principal = this.#check(entry, parsed);
    if (this.#matched.size >= this.#maxEntries) this.#matched.delete(this.#matched.keys().next().value as string);
    this.#matched.set(secret, { keyId: parsed.keyId, entry });
    return principal;
  }

  /**
   * The key `keyId` as it stands now, read as `verify` reads it (cached,
   * dropped at once on revocation), without its secret: for a grant the key
   * made earlier (a webhook it created). UNAUTHENTICATED when revoked,
   * expired or deleted.
   */
  async current(keyId: string): Promise<Principal> {
    return this.#checkState(this.#fresh(keyId) ?? (await this.#load(keyId)));
  }

  /** Drops what is known of one key (it was revoked or deleted). */
  forget(keyId: string): void {
    this.#cache.delete(keyId);
    // A read in flight may predate the change: its answer must not be kept.
    this.#loading.delete(keyId);
  }

  /** Drops everything (notifications may have been lost). */
  flush(): void {
    this.#cache.clear();
    this.#matched.clear();
    this.#loading.clear();
  }

  #fresh(keyId: string): Entry | undefined {
    const entry = this.#cache.get(keyId);
    if (entry !== undefined && Date.now() - entry.loadedAt < this.#cacheMs) return entry;
    return undefined;
  }

  #load(keyId: string): Promise<Entry> {
    const inFlight = this.#loading.get(keyId);
    if (inFlight !== undefined) return inFlight;
    const loading = this.#keys.find(keyId).then((key) => {
      const entry: Entry = { key, principal: key === undefined ? undefined : principalOf(key), loadedAt: Date.now() };
      if (this.#loading.get(keyId) === loading) {
        this.#loading.delete(keyId);
        if (this.#cache.size >= this.#maxEntries) this.#cache.delete(this.#cache.keys().next().value as string);
        this.#cache.delete(keyId);
        this.#cache.set(keyId, entry);
      }
      return entry;
    });
    this.#loading.set(keyId, loading);
    loading.catch(() => this.#loading.get(keyId) === loading && this.#loading.delete(keyId));
    return loading;
  }

  #check(entry: Entry, presented: ParsedSecret): Principal {
    const { key } = entry;
    if (key === undefined) throw new UnauthenticatedError("unknown API key");
    if (!sameHash(presented.hash, key.secretHash)) throw new UnauthenticatedError("API key secret does not match");
    return this.#checkState(entry);
  }

  /** Whether the key, its secret already matched, may act now. */
  #checkState(entry: Entry): Principal {
    const { key, principal } = entry;
    if (key === undefined || principal === undefined) throw new UnauthenticatedError("unknown API key");
    if (key.revoked) throw new UnauthenticatedError("API key revoked");
    const now = Date.now();
    if (key.expireTime !== null && key.expireTime.getTime() <= now) throw new UnauthenticatedError("API key expired", { expired: true });
    this.#touch(key.id, now);
    return principal;
  }

  /** Records use at most once per `touchEveryMs` per key, off the request's path. */
  #touch(keyId: string, now: number): void {
    const last = this.#touched.get(keyId);
    if (last !== undefined && now - last < this.#touchEveryMs) return;
    if (this.#touched.size >= this.#maxEntries) this.#touched.clear();
    this.#touched.set(keyId, now);
    this.#keys.touch(keyId).catch((err: unknown) => {
      this.#log.warn({ err: err instanceof Error ? err.message : String(err), api_key: keyId }, "cannot record API key use");
    });
  }
}

function principalOf(key: StoredApiKey): Principal {
  return {
    subject: `apikeys/${key.id}`,
    tenant: key.tenant,
    roles: key.roles,
    credential: { kind: "api_key", id: key.id },
    tier: key.tier,
  };
}
