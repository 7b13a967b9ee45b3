import { InvalidArgumentError } from "./errors.js";
import type { KeysetValues, PageTokens } from "./page-token.js";
import { effectivePageSize, type Page, type PageRequest, toPage } from "./pagination.js";
import type { Scope } from "./scope.js";

/** The type of one keyset column, checked when a token is decoded. */
export type KeysetPart = "timestamp" | "uuid" | "string" | "integer";

/** How one list query pages: its identity, its keyset shape, and each item's key. */
export interface KeysetQuery<T> {
  /**
   * Identifies the query — resource, filters and order, canonically written —
   * so a token cannot be replayed against a different query.
   */
  readonly query: string;
  readonly shape: readonly KeysetPart[];
  keyOf(item: T): KeysetValues;
}

/**
 * Runs keyset-paginated list use cases: applies the page-size rules, decodes
 * and checks the page token (bound to tenant and query), fetches one row
 * more than the page to learn whether another page exists, and issues the
 * next token. Every list method of every service goes through it.
 */
export class KeysetPager {
  readonly #tokens: PageTokens;

  constructor(tokens: PageTokens) {
    this.#tokens = tokens;
  }

  async page<T>(
    scope: Scope,
    request: PageRequest,
    spec: KeysetQuery<T>,
    fetch: (limit: number, after: KeysetValues | undefined) => Promise<T[]>,
  ): Promise<Page<T>> {
    const limit = effectivePageSize(request.pageSize);
    const binding = `${scope.tenant}\0${spec.query}`;
    const after = request.pageToken ? checkShape(this.#tokens.decode(binding, request.pageToken), spec.shape) : undefined;
    const rows = await fetch(limit + 1, after);
    return toPage(rows, limit, (last) => this.#tokens.encode(binding, spec.keyOf(last)));
  }
}

const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function checkShape(values: KeysetValues, shape: readonly KeysetPart[]): KeysetValues {
  const ok =
    values.length === shape.length &&
    shape.every((part, i) => {
      const v = values[i];
      switch (part) {
        case "timestamp":
          return typeof v === "string" && !Number.isNaN(Date.parse(v));
        case "uuid":
          return typeof v === "string" && uuid.test(v);
        case "string":
          return typeof v === "string";
        case "integer":
          return typeof v === "number" && Number.isSafeInteger(v);
      }
    });
  if (!ok) throw InvalidArgumentError.field("page_token", "is malformed");
  return values;
}
