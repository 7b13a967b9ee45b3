// Pure helpers of src/db against values written here (survivors of `npm run
// mutate`: the findings suites filter by plain prefixes only).
import { describe, expect, it } from "vitest";
import { likePrefix } from "../src/db/like-prefix.js";

describe("likePrefix", () => {
  it("escapes LIKE's pattern characters and the escape itself, and adds one trailing %", () => {
    expect(likePrefix("src/")).toBe("src/%");
    expect(likePrefix("a_b%c\\d")).toBe("a\\_b\\%c\\\\d%");
    expect(likePrefix("%")).toBe("\\%%");
    expect(likePrefix("")).toBe("%");
  });
});
