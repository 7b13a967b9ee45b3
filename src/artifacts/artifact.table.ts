import type { ColumnType } from "kysely";

/** Row type of `artifacts`: a file of an operation (`uploading`, then `ready`). */
export interface ArtifactTable {
  tenant_id: string;
  id: string;
  operation_id: string;
  task_id: string;
  name: string;
  content_type: string;
  /** bigint: read as a string by the PostgreSQL driver. */
  size_bytes: ColumnType<string | number, number | undefined, number>;
  chunk_bytes: number;
  sha256: ColumnType<string | null, string | null | undefined, string | null>;
  state: string;
  create_time: ColumnType<Date, Date | string | undefined, never>;
  update_time: ColumnType<Date, Date | string | undefined, Date | string>;
}

/** Row type of `artifact_chunks`: the content of an artifact, `chunk_bytes` at a time. */
export interface ArtifactChunkTable {
  tenant_id: string;
  artifact_id: string;
  seq: number;
  data: Uint8Array;
}
