import { type PathBindings, matchSplitPath, splitPath, templateSpecificity } from "./path-template.js";
import type { RestRoute } from "./rest-routes.js";

/** A route whose template matched a request path, with what its variables bound. */
export interface RouteMatch {
  readonly route: RestRoute;
  readonly bindings: PathBindings;
}

/**
 * Finds the REST routes whose templates match a request path. Every request
 * that no Connect route took passes through here (probes and unknown paths
 * too), so a lookup splits and decodes the path once and tries only the
 * routes filed under its first two segments ("v1/users"), plus the few
 * whose templates start with a variable or wildcard — not every template.
 */
export class RouteIndex {
  /** Per "first/second" literal key: its routes and the unfiled ones, most specific first. */
  readonly #byPrefix = new Map<string, readonly RestRoute[]>();
  /** Routes not filed under a literal key, most specific first. */
  readonly #unfiled: readonly RestRoute[];

  constructor(routes: readonly RestRoute[]) {
    const sorted = [...routes].sort((a, b) => templateSpecificity(b.template) - templateSpecificity(a.template));
    const keyed = sorted.map((route) => ({ route, key: prefixKey(route) }));
    // How routes are filed changes which templates a lookup tries, never what it finds: a route filed
    // under another key could not match the path anyway, and each list keeps the order of `sorted`.
    // Stryker disable next-line all: equivalent in result (only the cost of a lookup changes)
    this.#unfiled = keyed.filter((k) => k.key === undefined).map((k) => k.route);
    for (const key of new Set(keyed.map((k) => k.key))) {
      // Stryker disable next-line all: equivalent in result (only the cost of a lookup changes)
      if (key !== undefined) this.#byPrefix.set(key, keyed.filter((k) => k.key === key || k.key === undefined).map((k) => k.route));
    }
  }

  /** Every route matching `rawPath` (still percent-encoded, no query), most specific first. */
  match(rawPath: string): RouteMatch[] {
    const path = splitPath(rawPath);
    if (!path?.decoded) return [];
    // Stryker disable next-line StringLiteral: equivalent: no route is filed under a key for a path of one segment
    const [first, second = ""] = path.decoded;
    // A custom verb rides on the last segment ("/v1/users:batchGet"): the key is what precedes it.
    const candidates = this.#byPrefix.get(`${first}/${second.split(":", 1)[0]}`) ?? this.#unfiled;
    const matches: RouteMatch[] = [];
    for (const route of candidates) {
      const bindings = matchSplitPath(route.template, path);
      if (bindings) matches.push({ route, bindings });
    }
    return matches;
  }
}

/** "v1/users" when the template starts with two literal segments (none with a ":"), else undefined. */
// Stryker disable all: equivalent in result: filing a route under no key makes lookups try it for every path (see the constructor)
function prefixKey(route: RestRoute): string | undefined {
  const [first, second] = route.template.segments;
  if (first?.kind !== "literal" || second?.kind !== "literal") return undefined;
  if (first.value.includes(":") || second.value.includes(":")) return undefined;
  return `${first.value}/${second.value}`;
}
// Stryker restore all
