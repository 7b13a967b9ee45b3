/**
 * Object members a JSON request body may hold in all. The largest valid
 * request (1,000 findings of a dozen fields) holds ~13,000; V8 parses dense
 * members at ~0.4 µs each on a busy machine, so 280,000 small keys in a
 * 3.7 MiB body took ~100 ms of JSON.parse alone, more than the 50 ms +
 * 20 ms/MiB a request may block the event loop.
 */
export const maxJsonMembers = 50_000;

/** What scanJsonObjects found wrong, if anything. */
export type JsonObjectsProblem = { readonly kind: "duplicate"; readonly name: string } | { readonly kind: "too-many" };

/**
 * Reads the objects of a JSON text, before it is parsed, for two things: a
 * member name that occurs twice in one object, and more than `maxMembers`
 * members in all (it stops there). protobuf-es refuses duplicates in
 * fromJsonString, but its check walks the text one character at a time in
 * JavaScript: 15-50 ms per MiB, more than parsing and decoding together.
 * This one jumps over string contents with `indexOf`, so text (the bulk of a
 * large body) is skipped at native speed. Text that is not JSON gives no
 * reliable answer; JSON.parse judges it afterwards.
 *
 * @example
 *   scanJsonObjects('{"a":1,"b":{"a":2}}') // undefined
 *   scanJsonObjects('{"a":1,"a":2}')       // { kind: "duplicate", name: "a" }
 */
export function scanJsonObjects(text: string, maxMembers = maxJsonMembers): JsonObjectsProblem | undefined {
  let members = 0;
  // One Set of member names per open object; null for an open array.
  const stack: (Set<string> | null)[] = [];
  let expectKey = false;
  let i = 0;
  while (i < text.length) {
    const c = text.charCodeAt(i);
    if (c === 0x22 /* " */) {
      const end = closingQuote(text, i + 1);
      if (expectKey) {
        if (++members > maxMembers) return { kind: "too-many" };
        const raw = text.slice(i + 1, end);
        let name = raw;
        if (raw.includes("\\")) {
          try {
            name = JSON.parse(text.slice(i, end + 1)) as string;
          } catch {
            return undefined; // not JSON: JSON.parse says so
          }
        }
        const names = stack[stack.length - 1];
        if (names) {
          if (names.has(name)) return { kind: "duplicate", name };
          names.add(name);
        }
        expectKey = false;
      }
      i = end + 1;
      continue;
    }
    switch (c) {
      case 0x7b /* { */:
        stack.push(new Set());
        expectKey = true;
        break;
      case 0x5b /* [ */:
        stack.push(null);
        expectKey = false;
        break;
      case 0x7d /* } */:
      case 0x5d /* ] */:
        stack.pop();
        expectKey = false;
        break;
      case 0x2c /* , */:
        expectKey = stack[stack.length - 1] != null;
        break;
      case 0x3a /* : */:
        expectKey = false;
        break;
    }
    i++;
  }
  return undefined;
}

/** The index of the quote that closes a string whose contents start at `from`. */
function closingQuote(text: string, from: number): number {
  let at = from;
  for (;;) {
    const q = text.indexOf('"', at);
    if (q < 0) return text.length; // not reached for valid JSON
    // Escaped when preceded by an odd run of backslashes; each run is read once.
    let slashes = 0;
    for (let j = q - 1; j >= from && text.charCodeAt(j) === 0x5c; j--) slashes++;
    if (slashes % 2 === 0) return q;
    at = q + 1;
  }
}
