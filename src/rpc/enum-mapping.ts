import { InvalidArgumentError } from "../shared/errors.js";

/** Converts one proto enum to the domain's string union and back. */
export interface EnumMapping<E extends number, D extends string> {
  /** The domain value, or undefined for `*_UNSPECIFIED` (and unknown numbers). */
  toDomain(value: number): D | undefined;
  toMessage(value: D): E;
  /**
   * The domain value of a field an update sets; INVALID_ARGUMENT naming
   * `field` when it is unspecified — "set the state to nothing" means nothing.
   */
  required(value: number, field: string): D;
}

/**
 * Builds the mapping from its pairs, so every handler spells a state enum
 * once instead of writing two switch statements.
 *
 * @example
 *   const states = enumMapping([[Agent_State.ENABLED, "enabled"], [Agent_State.DISABLED, "disabled"]]);
 */
export function enumMapping<E extends number, D extends string>(pairs: ReadonlyArray<readonly [E, D]>): EnumMapping<E, D> {
  const toDomain = new Map<number, D>(pairs);
  const toMessage = new Map<string, E>(pairs.map(([e, d]) => [d, e]));
  const names = pairs.map(([, d]) => d).join(", ");
  return {
    toDomain: (value) => toDomain.get(value),
    toMessage: (value) => {
      const e = toMessage.get(value);
      if (e === undefined) throw new Error(`no enum value for ${value}`);
      return e;
    },
    required: (value, field) => {
      const d = toDomain.get(value);
      if (d === undefined) throw InvalidArgumentError.field(field, `must be one of ${names}`);
      return d;
    },
  };
}
