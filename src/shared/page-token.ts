import { createHmac, timingSafeEqual } from "node:crypto";
import { InvalidArgumentError } from "./errors.js";

/** A keyset position: the sort-key values of the last row of a page. */
export type KeysetValues = readonly (string | number)[];

/**
 * Opaque, tamper-proof page tokens. A token carries the keyset position of
 * the last row served and an HMAC over that position, the tenant and the
 * query it belongs to; a token edited by hand, or replayed by another tenant
 * or against another query, fails verification and is INVALID_ARGUMENT. The
 * values inside are only ever bound as query parameters, never spliced into
 * SQL. The key is shared through the database, so any instance accepts a
 * token any other issued.
 */
export class PageTokens {
  readonly #key: Uint8Array;

  constructor(key: Uint8Array) {
    if (key.byteLength < 16) throw new Error("page token key too short");
    this.#key = key;
  }

  encode(binding: string, values: KeysetValues): string {
    const payload = Buffer.from(JSON.stringify(values)).toString("base64url");
    return `${payload}.${this.#mac(binding, payload).toString("base64url")}`;
  }

  /** Returns the keyset values, or throws INVALID_ARGUMENT naming `page_token`. */
  decode(binding: string, token: string): KeysetValues {
    const dot = token.indexOf(".");
    const payload = token.slice(0, dot);
    const mac = Buffer.from(token.slice(dot + 1), "base64url");
    const expected = this.#mac(binding, payload);
    if (dot <= 0 || mac.byteLength !== expected.byteLength || !timingSafeEqual(mac, expected)) {
      throw invalidToken();
    }
    let values: unknown;
    try {
      values = JSON.parse(Buffer.from(payload, "base64url").toString("utf8"));
    } catch {
      throw invalidToken();
    }
    if (!Array.isArray(values) || !values.every((v) => typeof v === "string" || typeof v === "number")) {
      throw invalidToken();
    }
    return values;
  }

  #mac(binding: string, payload: string): Buffer {
    return createHmac("sha256", this.#key).update(binding).update("\0").update(payload).digest().subarray(0, 18);
  }
}

function invalidToken(): InvalidArgumentError {
  return InvalidArgumentError.field("page_token", "is not a token this server issued for this query");
}
