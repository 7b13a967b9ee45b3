/**
 * Whether a REST request's Content-Type announces a body Anvil reads as
 * JSON: none at all, `application/json`, any `application/*+json`, or
 * `application/x-www-form-urlencoded` — what `curl -d` sends unless told
 * otherwise, so the README's one-line curl examples work as written. The
 * body is parsed as JSON whatever the announcement (a form-encoded
 * `a=b` is INVALID_ARGUMENT); any other type is refused with 415.
 *
 * @example
 *   isJsonBodyType(undefined)                             // true
 *   isJsonBodyType("application/merge-patch+json")        // true
 *   isJsonBodyType("application/x-www-form-urlencoded")   // true
 *   isJsonBodyType("text/plain")                          // false
 */
export function isJsonBodyType(contentType: string | undefined): boolean {
  if (contentType === undefined) return true;
  return /^application\/(([\w.+-]+\+)?json|x-www-form-urlencoded)\s*(;|$)/i.test(contentType);
}
