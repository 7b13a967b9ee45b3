import { create } from "@bufbuild/protobuf";
import { FieldMaskSchema } from "@bufbuild/protobuf/wkt";
import { type Finding, FindingService, Finding_Severity, Finding_Status } from "../gen/anvil/findings/v1/findings_pb.js";
import { describeResource } from "./support/resource-suite.js";

describeResource<typeof FindingService, Finding>({
  name: "finding",
  service: FindingService,
  writerKey: "acme-editor",
  // The analyzer may create findings, so it is not a denied writer here; its
  // limits (no update, no delete) are tested in findings-rules.test.ts.
  deniedWriterKeys: ["acme-viewer", "acme-worker"],
  deniedReaderKeys: ["acme-worker"],
  create: async (client, seed, requestId) =>
    (
      await client.createFinding({
        finding: {
          filePath: `src/${seed}.ts`,
          line: 10,
          endLine: 12,
          severity: Finding_Severity.HIGH,
          issueType: "null-dereference",
          ruleId: "ts/null-check",
          message: `value '${seed}' may be null`,
          source: "suite",
        },
        requestId,
      })
    ).finding!,
  get: async (client, id) => (await client.getFinding({ id })).finding!,
  list: async (client, pageSize, pageToken) => {
    const res = await client.listFindings({ pageSize, pageToken });
    return { items: res.findings, next: res.nextPageToken };
  },
  update: async (client, finding, seed, etag, mask = ["suggestion", "status"]) =>
    (
      await client.updateFinding({
        finding: { id: finding.id, suggestion: seed, status: Finding_Status.ACKNOWLEDGED, etag: etag ?? "" },
        updateMask: create(FieldMaskSchema, { paths: mask }),
      })
    ).finding!,
  isUpdated: (finding, seed) => finding.suggestion === seed && finding.status === Finding_Status.ACKNOWLEDGED,
  delete: async (client, id, etag) => {
    await client.deleteFinding({ id, etag: etag ?? "" });
  },
  createInvalid: (client) =>
    client.createFinding({
      finding: { filePath: "src/a.ts", line: -3, severity: Finding_Severity.LOW, issueType: "x", message: "m", source: "s" },
    }),
  invalidField: "finding.line",
  id: (f) => f.id,
  etag: (f) => f.etag,
});
