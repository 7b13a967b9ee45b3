import type { IncomingHttpHeaders } from "node:http";

/**
 * A `Headers` over Node's already-parsed request headers that copies them
 * into the Fetch `Headers` only when something iterates or changes them.
 * Interceptors mostly call `get()` for one or two names; building a full
 * `Headers` per call (validation of every name and value) is measurable work
 * on the unary hot path for nothing.
 */
export class RequestHeaders extends Headers {
  #raw: IncomingHttpHeaders | undefined;

  constructor(raw: IncomingHttpHeaders) {
    super();
    this.#raw = raw;
  }

  override get(name: string): string | null {
    const raw = this.#raw;
    if (raw === undefined) return super.get(name);
    const value = raw[name.toLowerCase()];
    if (value === undefined) return null;
    return Array.isArray(value) ? value.join(", ") : value;
  }

  override has(name: string): boolean {
    const raw = this.#raw;
    return raw === undefined ? super.has(name) : raw[name.toLowerCase()] !== undefined;
  }

  override set(name: string, value: string): void {
    this.#materialize();
    super.set(name, value);
  }

  override append(name: string, value: string): void {
    this.#materialize();
    super.append(name, value);
  }

  override delete(name: string): void {
    this.#materialize();
    super.delete(name);
  }

  override forEach(cb: (value: string, key: string, parent: Headers) => void, thisArg?: unknown): void {
    this.#materialize();
    super.forEach(cb, thisArg);
  }

  override entries(): HeadersIterator<[string, string]> {
    this.#materialize();
    return super.entries();
  }

  override keys(): HeadersIterator<string> {
    this.#materialize();
    return super.keys();
  }

  override values(): HeadersIterator<string> {
    this.#materialize();
    return super.values();
  }

  override [Symbol.iterator](): HeadersIterator<[string, string]> {
    return this.entries();
  }

  override getSetCookie(): string[] {
    this.#materialize();
    return super.getSetCookie();
  }

  #materialize(): void {
    const raw = this.#raw;
    if (raw === undefined) return;
    this.#raw = undefined;
    for (const [key, value] of Object.entries(raw)) {
      // HTTP/2 pseudo-headers (":path", …) are not headers.
      if (value === undefined || key.startsWith(":")) continue;
      if (Array.isArray(value)) for (const v of value) super.append(key, v);
      else super.append(key, value);
    }
  }
}
