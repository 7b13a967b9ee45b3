import type { DescMethod } from "@bufbuild/protobuf";

/**
 * Request body limits of the methods that need their own, by full method
 * name (`package.Service/Method`), in bytes. Every other method gets the
 * configured default (ANVIL_MAX_REQUEST_BYTES). This is the one place a
 * route's limit is set — larger for uploads (artifacts), smaller for routes
 * an outsider can reach (signed webhook deliveries) — and every transport
 * (Connect, gRPC, gRPC-Web on both serving paths, REST) reads it from here.
 */
const ownLimits: ReadonlyMap<string, number> = new Map<string, number>([
  // No method needs its own limit yet.
]);

/** The largest request body each method accepts. */
export class BodyLimits {
  readonly #defaultBytes: number;
  readonly #own: ReadonlyMap<string, number>;

  /**
   * `served` are every method the gateway serves: a limit set for a method
   * that does not exist stops start-up rather than silently guarding nothing.
   */
  constructor(defaultBytes: number, served: readonly DescMethod[], own: ReadonlyMap<string, number> = ownLimits) {
    const names = new Set(served.map(methodName));
    for (const [name, bytes] of own) {
      if (!names.has(name)) throw new Error(`body limit set for ${name}, which is not a served method`);
      if (!Number.isInteger(bytes) || bytes < 1) throw new Error(`body limit of ${name} must be a positive integer, got ${bytes}`);
    }
    this.#defaultBytes = defaultBytes;
    this.#own = own;
  }

  /** The default, for routes that are not methods. */
  get defaultBytes(): number {
    return this.#defaultBytes;
  }

  /** The limit of `method`. */
  forMethod(method: DescMethod): number {
    return this.#own.get(methodName(method)) ?? this.#defaultBytes;
  }

  /** Whether any method of `methods` has a limit of its own. */
  anyOwn(methods: readonly DescMethod[]): boolean {
    return methods.some((m) => this.#own.has(methodName(m)));
  }
}

function methodName(method: DescMethod): string {
  return `${method.parent.typeName}/${method.name}`;
}
