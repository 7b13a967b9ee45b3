import { equals, fromJson } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { BatchCreateFindingsRequestSchema } from "../gen/anvil/findings/v1/findings_pb.js";
import { decodeUtf8, fromJsonInSlices } from "../src/server/message-decoding.js";
import { useAllocationFreeUtf8Checks } from "../src/server/text-encoding.js";

// Large bodies are decoded in time slices; what they decode to, and the
// errors they raise, must be exactly what the one-go decoders give.
describe("decoding large requests in time slices", () => {
  it("decodes UTF-8 split across parts exactly as one decode does, four-byte characters on every boundary", async () => {
    for (const text of ["a".repeat(300_000), "😀".repeat(100_000), `x${"é😀€".repeat(40_000)}`]) {
      const bytes = new TextEncoder().encode(text);
      expect(await decodeUtf8(bytes)).toBe(text);
    }
  });

  it("refuses bytes that are not UTF-8 wherever they are, as the strict decoder does", async () => {
    const bytes = new TextEncoder().encode("😀".repeat(100_000));
    for (const at of [3, 65_535, 65_536, 200_001, bytes.byteLength - 1]) {
      const broken = bytes.slice();
      broken[at] = 0xff;
      await expect(decodeUtf8(broken)).rejects.toThrow(TypeError);
    }
    // A character cut off by the end of the body.
    await expect(decodeUtf8(bytes.subarray(0, bytes.byteLength - 2))).rejects.toThrow(TypeError);
  });

  const finding = (i: number) => ({ finding: { filePath: `src/f${i}.ts`, issueType: "smell", ruleId: `r${i}`, severity: "SEVERITY_HIGH", suggestion: "😀".repeat(2_000) } });

  it("builds the same message as fromJson for a batch of 1,000 items", async () => {
    const json = { requests: Array.from({ length: 1_000 }, (_, i) => finding(i)) };
    const sliced = await fromJsonInSlices(BatchCreateFindingsRequestSchema, json);
    expect(equals(BatchCreateFindingsRequestSchema, sliced, fromJson(BatchCreateFindingsRequestSchema, json))).toBe(true);
    expect(sliced.requests).toHaveLength(1_000);
  });

  it("raises fromJson's own error for a bad item deep in a long list", async () => {
    const json = { requests: Array.from({ length: 500 }, (_, i) => finding(i)) };
    (json.requests[437]!.finding as Record<string, unknown>).severity = "NOT_A_SEVERITY";
    const expected = (() => {
      try {
        fromJson(BatchCreateFindingsRequestSchema, json);
      } catch (e) {
        return (e as Error).message;
      }
    })();
    expect(expected).toMatch(/NOT_A_SEVERITY/);
    await expect(fromJsonInSlices(BatchCreateFindingsRequestSchema, json)).rejects.toThrow(expected);
  });

  it("leaves a null item to fromJson, which refuses it", async () => {
    const json = { requests: [...Array.from({ length: 200 }, (_, i) => finding(i)), null] };
    await expect(fromJsonInSlices(BatchCreateFindingsRequestSchema, json)).rejects.toThrow(/must not be null/);
  });

  it("yields to the event loop while decoding a large batch", async () => {
    const json = { requests: Array.from({ length: 1_000 }, (_, i) => finding(i)) };
    const bytes = new TextEncoder().encode(JSON.stringify(json));
    // Turns of the event loop while the decoding runs: none if it ran at once.
    let turns = 0;
    const timer = setInterval(() => turns++, 1);
    const message = await fromJsonInSlices(BatchCreateFindingsRequestSchema, JSON.parse(await decodeUtf8(bytes)));
    clearInterval(timer);
    expect(message.requests).toHaveLength(1_000);
    expect(turns).toBeGreaterThan(2);
  });
});

describe("protobuf-es's string check", () => {
  it("still refuses an unpaired surrogate once the allocation-free check is in place", async () => {
    useAllocationFreeUtf8Checks();
    expect(() => fromJson(BatchCreateFindingsRequestSchema, { requests: [{ finding: { suggestion: "half a pair \ud83d" } }] })).toThrow(/invalid UTF8/);
    expect(fromJson(BatchCreateFindingsRequestSchema, { requests: [{ finding: { suggestion: "a whole pair 😀" } }] }).requests[0]!.finding!.suggestion).toBe("a whole pair 😀");
  });
});
