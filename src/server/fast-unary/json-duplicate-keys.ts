/**
 * The first member name that occurs twice in one object of `text`, which
 * must already be valid JSON (JSON.parse accepted it). protobuf-es refuses
 * such a body in fromJsonString, but its check walks the text one character
 * at a time in JavaScript: 15-50 ms per MiB, more than parsing and decoding
 * together. This one jumps over string contents with `indexOf`, so text (the
 * bulk of a large body) is skipped at native speed.
 *
 * @example
 *   duplicateKey('{"a":1,"b":{"a":2}}') // undefined
 *   duplicateKey('{"a":1,"a":2}')       // "a"
 */
export function duplicateKey(text: string): string | undefined {
  // One Set of member names per open object; null for an open array.
  const stack: (Set<string> | null)[] = [];
  let expectKey = false;
  let i = 0;
  while (i < text.length) {
    const c = text.charCodeAt(i);
    if (c === 0x22 /* " */) {
      const end = closingQuote(text, i + 1);
      if (expectKey) {
        const raw = text.slice(i + 1, end);
        const name = raw.includes("\\") ? (JSON.parse(text.slice(i, end + 1)) as string) : raw;
        const names = stack[stack.length - 1];
        if (names) {
          if (names.has(name)) return name;
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
