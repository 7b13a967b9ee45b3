/**
 * Reading frames out of a stack trace a client sent. The text is up to
 * 64 KiB of anything, so every step here is one left-to-right pass: a
 * backtracking regex such as `[^\s]+\.[a-z0-9]+:\d+` tries every start and
 * every dot behind it, and 32 KiB of `a.a.a.…` kept the event loop busy for
 * seconds.
 */

/** One frame of a stack trace: where, and how deep (0 = innermost). */
export interface StackFrame {
  readonly filePath: string;
  readonly line: number;
  readonly depth: number;
}

/** Frames beyond this many distinct ones are ignored. */
export const maxFrames = 50;

/**
 * Frames read, repeats included, before reading stops: a recursion can
 * repeat one frame thousands of times, and what lies beyond it no longer
 * says where the error came from.
 */
export const maxFramesRead = 1000;

/**
 * Reads `path:line[:col]` frames (V8, Go, Java, Rust) and `File "path",
 * line N` frames (Python), in order, without repeats, at most maxFrames
 * (from the first maxFramesRead).
 */
export function parseStackTrace(stackTrace: string): StackFrame[] {
  const python = framesOf(stackTrace, pythonFrame);
  const pathLine = framesOf(stackTrace, pathLineFrame, true);
  const frames: StackFrame[] = [];
  const seen = new Set<string>();
  let p = python.next();
  let q = pathLine.next();
  // Both sequences are in text order: merge them, lazily, so that reading
  // stops as soon as enough frames are known.
  for (let read = 0; read < maxFramesRead && !(p.done && q.done); read++) {
    let f: FoundFrame;
    if (q.done || (!p.done && p.value.at < q.value.at)) [f, p] = [p.value!, python.next()];
    else [f, q] = [q.value, pathLine.next()];
    const key = `${f.filePath}:${f.line}`;
    if (seen.has(key) || !Number.isSafeInteger(f.line)) continue;
    seen.add(key);
    frames.push({ filePath: f.filePath, line: f.line, depth: frames.length });
    if (frames.length === maxFrames) break;
  }
  return frames;
}

interface FoundFrame {
  readonly at: number;
  readonly filePath: string;
  readonly line: number;
}

// Both patterns run in linear time. Python's: `[^"\n]+` ends at the first
// quote or newline and the literal after it matches there or not, so no
// character is scanned from two starts.
const pythonFrame = /File "([^"\n]+)", line (\d+)/g;

// A path is a run of characters between delimiters (whitespace, brackets,
// quotes) up to its last `.ext:digits`. The lookbehind lets a match start
// only where such a run starts: without it the engine retried every
// position inside the run and backtracked over every dot behind it, which
// is quadratic (32 KiB of `a.a.a.…` kept the event loop busy for seconds).
// From a run's start, the greedy run and its backtracking visit each
// character once, and each `.ext` at most once more.
const pathLineFrame = /(?<![^\s()'"<>[\]])([^\s()'"<>[\]]+\.[A-Za-z0-9]+):(\d+)/g;

function* framesOf(text: string, pattern: RegExp, isUrl = false): Generator<FoundFrame, void> {
  for (const m of text.matchAll(pattern)) {
    const path = m[1]!;
    // V8 names ES modules by their file:// URL.
    const filePath = isUrl && path.startsWith("file://") ? path.slice("file://".length) : path;
    yield { at: m.index, filePath, line: Number(m[2]) };
  }
}
