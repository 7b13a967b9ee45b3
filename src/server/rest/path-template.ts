/**
 * The path template syntax of `google.api.http` (see google/api/http.proto):
 *
 *     Template = "/" Segments [ Verb ] ;
 *     Segments = Segment { "/" Segment } ;
 *     Segment  = "*" | "**" | LITERAL | Variable ;
 *     Variable = "{" FieldPath [ "=" Segments ] "}" ;
 *     Verb     = ":" LITERAL ;
 *
 * Parsed once at startup; matching a request path is then a walk over
 * segments with no regular expressions built from proto text.
 */

/** One segment of a parsed template. A variable covers one or more segments. */
export type TemplateSegment =
  | { readonly kind: "literal"; readonly value: string }
  | { readonly kind: "wildcard" } // `*`: exactly one segment
  | { readonly kind: "rest" } // `**`: zero or more segments, last only
  | { readonly kind: "variable"; readonly fieldPath: readonly string[]; readonly segments: readonly TemplateSegment[] };

/** A parsed path template. */
export interface PathTemplate {
  /** The template as written in the proto. */
  readonly source: string;
  readonly segments: readonly TemplateSegment[];
  /** Custom verb (`deploy` in `/v1/ipas/{id}:deploy`), or undefined. */
  readonly verb: string | undefined;
  /** Field paths bound by variables, in order. */
  readonly variables: readonly (readonly string[])[];
}

/** Values bound by a match: field path (dotted) → decoded value. */
export type PathBindings = Map<string, string>;

/**
 * Parses a template, throwing on syntax errors so that a bad annotation stops
 * startup instead of producing a route that never matches.
 */
export function parsePathTemplate(source: string): PathTemplate {
  if (!source.startsWith("/")) throw new Error(`path template ${JSON.stringify(source)} must start with "/"`);
  // The verb is after the last ":" that is outside braces.
  let depth = 0;
  let verbAt = -1;
  // Stryker disable next-line EqualityOperator: equivalent: one step past the end reads undefined, which is no brace and no colon
  for (let i = 0; i < source.length; i++) {
    const c = source[i];
    if (c === "{") depth++;
    else if (c === "}") depth--;
    else if (c === ":" && depth === 0) verbAt = i;
  }
  const body = verbAt === -1 ? source.slice(1) : source.slice(1, verbAt);
  const verb = verbAt === -1 ? undefined : source.slice(verbAt + 1);
  // Stryker disable next-line ConditionalExpression: equivalent: 'always' tests an undefined verb as the text "undefined", which the pattern accepts
  if (verb !== undefined && !/^[A-Za-z0-9_.~-]+$/.test(verb)) throw new Error(`bad verb in path template ${source}`);
  const variables: string[][] = [];
  const segments = parseSegments(splitOutsideBraces(body), source, variables, true);
  const restAt = segments.findIndex((s) => s.kind === "rest" || (s.kind === "variable" && s.segments.some((x) => x.kind === "rest")));
  if (restAt !== -1 && restAt !== segments.length - 1) throw new Error(`"**" must be the last segment in ${source}`);
  return { source, segments, verb, variables };
}

function splitOutsideBraces(text: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let start = 0;
  // Stryker disable next-line EqualityOperator: equivalent: one step past the end reads undefined, which is no brace and no slash
  for (let i = 0; i < text.length; i++) {
    if (text[i] === "{") depth++;
    else if (text[i] === "}") depth--;
    else if (text[i] === "/" && depth === 0) {
      parts.push(text.slice(start, i));
      start = i + 1;
    }
  }
  parts.push(text.slice(start));
  return parts;
}

function parseSegments(parts: string[], source: string, variables: string[][], allowVariables: boolean): TemplateSegment[] {
  return parts.map((part): TemplateSegment => {
    if (part === "*") return { kind: "wildcard" };
    if (part === "**") return { kind: "rest" };
    if (part.startsWith("{") && part.endsWith("}") && allowVariables) {
      const inner = part.slice(1, -1);
      const eq = inner.indexOf("=");
      const path = (eq === -1 ? inner : inner.slice(0, eq)).split(".");
      if (!path.every((p) => /^[A-Za-z_][A-Za-z0-9_]*$/.test(p))) throw new Error(`bad variable ${part} in ${source}`);
      variables.push(path);
      const sub = eq === -1 ? [{ kind: "wildcard" } as const] : parseSegments(inner.slice(eq + 1).split("/"), source, variables, false);
      return { kind: "variable", fieldPath: path, segments: sub };
    }
    if (part === "" || /[{}*]/.test(part)) throw new Error(`bad segment ${JSON.stringify(part)} in path template ${source}`);
    return { kind: "literal", value: part };
  });
}

/**
 * A request path split into segments once, for matching against many
 * templates: the raw (still percent-encoded) segments, and the decoded ones
 * (undefined when a segment is not valid percent-encoding).
 */
export interface SplitPath {
  readonly raw: readonly string[];
  readonly decoded: readonly string[] | undefined;
}

/** Splits a raw URL path ("/v1/users/u1") into segments; undefined if it does not start with "/". */
export function splitPath(rawPath: string): SplitPath | undefined {
  if (!rawPath.startsWith("/")) return undefined;
  const raw = rawPath.slice(1).split("/");
  return { raw, decoded: decodeAll(raw) };
}

/**
 * Matches a raw (still percent-encoded) URL path against a template. Returns
 * the variable bindings, or undefined when the path does not match. A
 * single-segment variable is fully percent-decoded; a multi-segment one keeps
 * its "/" separators and decodes each segment, as the http.proto rules say.
 */
export function matchPathTemplate(template: PathTemplate, rawPath: string): PathBindings | undefined {
  const path = splitPath(rawPath);
  return path && matchSplitPath(template, path);
}

/** matchPathTemplate for a path already split by splitPath. */
export function matchSplitPath(template: PathTemplate, path: SplitPath): PathBindings | undefined {
  let parts = path.decoded;
  if (template.verb !== undefined) {
    // The verb is cut off the raw last segment, so an encoded ":" (%3A) never separates one.
    const suffix = `:${template.verb}`;
    const last = path.raw.at(-1)!;
    if (!last.endsWith(suffix)) return undefined;
    const stem = decodeAll([last.slice(0, -suffix.length)]);
    if (!parts || !stem) return undefined;
    parts = [...parts.slice(0, -1), stem[0]!];
  }
  if (!parts || parts.some((p) => p === "")) return undefined;
  const bindings: PathBindings = new Map();
  const end = matchSegments(template.segments, parts, 0, bindings);
  return end === parts.length ? bindings : undefined;
}

function decodeAll(raw: readonly string[]): string[] | undefined {
  try {
    // Stryker disable next-line StringLiteral: equivalent: decoding text without "%" leaves it as it is (the test only saves the call)
    return raw.map((p) => (p.includes("%") ? decodeURIComponent(p) : p));
    // Stryker disable next-line BlockStatement: equivalent: without its return, the catch block falls through to the same undefined
  } catch {
    return undefined;
  }
}

function matchSegments(segments: readonly TemplateSegment[], parts: readonly string[], from: number, bindings: PathBindings): number {
  let at = from;
  for (const segment of segments) {
    switch (segment.kind) {
      case "literal":
        if (parts[at] !== segment.value) return -1;
        at++;
        break;
      case "wildcard":
        // Stryker disable next-line ConditionalExpression,EqualityOperator: equivalent: a step past the end only moves on, and the match then ends past the path's length, which is no match either
        if (at >= parts.length) return -1;
        at++;
        break;
      case "rest":
        at = parts.length;
        break;
      case "variable": {
        const start = at;
        at = matchSegments(segment.segments, parts, at, bindings);
        if (at === -1 || at === start) return -1;
        bindings.set(segment.fieldPath.join("."), parts.slice(start, at).join("/"));
        break;
      }
    }
  }
  return at;
}

/**
 * How specific a template is, for choosing between templates that match the
 * same path: a custom verb first, then more literal segments, then fewer
 * `**`. `/v1/ipas/{id}:deploy` thus wins over `/v1/ipas/{id}`.
 */
export function templateSpecificity(template: PathTemplate): number {
  let literals = 0;
  let rests = 0;
  const walk = (segments: readonly TemplateSegment[]) => {
    for (const s of segments) {
      if (s.kind === "literal") literals++;
      else if (s.kind === "rest") rests++;
      else if (s.kind === "variable") walk(s.segments);
    }
  };
  walk(template.segments);
  return (template.verb !== undefined ? 1_000_000 : 0) + literals * 1000 - rests;
}
