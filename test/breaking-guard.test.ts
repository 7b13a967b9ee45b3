import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { type CommandResult, ensureProtoDeps, repoRoot, runBuf } from "./support/buf-cli.js";

/** One finding of `buf breaking --error-format json` (one JSON object per line). */
interface Finding {
  path: string;
  type: string;
  message: string;
}

const releasedImage = join(repoRoot, ".buf-release/image.binpb");
const usersProto = "proto/anvil/users/v1/users.proto";

// The guard CI runs (`npm run lint:proto`): buf lint, then buf breaking of
// the `proto` module against the committed image of the last released API.
// Each test works on a fresh copy of the workspace (buf.yaml, proto/,
// .proto-deps/) so the deliberate breaks never touch the repository. No
// database or server is involved, so this suite runs once, not per database.
describe("breaking-change guard (buf lint + buf breaking against .buf-release/image.binpb)", () => {
  let dir: string;

  beforeAll(async () => {
    await ensureProtoDeps();
    expect(existsSync(releasedImage), "the released API image must be committed").toBe(true);
  });
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "anvil-breaking-"));
    for (const entry of ["buf.yaml", "proto", ".proto-deps"]) cpSync(join(repoRoot, entry), join(dir, entry), { recursive: true });
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const breaking = (): Promise<CommandResult> =>
    runBuf(["breaking", "proto", "--against", releasedImage, "--error-format", "json"], dir);

  function findings(result: CommandResult): Finding[] {
    return result.stdout
      .split("\n")
      .filter((line) => line.startsWith("{"))
      .map((line) => JSON.parse(line) as Finding);
  }

  /** Rewrites users.proto in the copy, failing if `from` is not there (so an edit can never silently be a no-op). */
  function edit(from: RegExp, to: string): void {
    const file = join(dir, usersProto);
    const before = readFileSync(file, "utf8");
    expect(before).toMatch(from);
    writeFileSync(file, before.replace(from, to));
  }

  it("passes buf lint and buf breaking on the unmodified copy", async () => {
    const lint = await runBuf(["lint"], dir);
    expect(lint, lint.stdout + lint.stderr).toMatchObject({ code: 0, stdout: "" });
    const result = await breaking();
    expect(result, result.stdout + result.stderr).toMatchObject({ code: 0, stdout: "" });
  });

  it("accepts a compatible change: a new field", async () => {
    edit(/^(\s*google\.protobuf\.Timestamp update_time = 8[^\n]*\n)/m, "$1  // A compatible addition.\n  string nickname = 9;\n");
    const result = await breaking();
    expect(result, result.stdout + result.stderr).toMatchObject({ code: 0, stdout: "" });
  });

  it("fails when a field is removed from User, naming the field", async () => {
    edit(/^\s*\/\/ Name shown in user interfaces\.\n\s*string display_name = 3 [^\n]*\n/m, "\n");
    const result = await breaking();
    expect(result.code).not.toBe(0);
    expect(findings(result)).toContainEqual(
      expect.objectContaining({
        path: usersProto,
        type: "FIELD_NO_DELETE",
        message: expect.stringMatching(/field "3" with name "display_name" on message "User" was deleted/),
      }),
    );
  });

  it("fails when a field tag is renumbered, naming the old tag", async () => {
    edit(/(?<=^\s*string etag = )6;/m, "16;");
    const result = await breaking();
    expect(result.code).not.toBe(0);
    expect(findings(result)).toContainEqual(
      expect.objectContaining({
        path: usersProto,
        type: "FIELD_NO_DELETE",
        message: expect.stringMatching(/field "6" with name "etag" on message "User" was deleted/),
      }),
    );
  });
});
