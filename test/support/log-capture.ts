import pino, { type Level, type Logger } from "pino";

/** A logger whose every line (JSON, as the gateway writes it) is kept in `lines`, for tests that read the logs. */
export function captureLog(level: Level = "trace"): { log: Logger; lines: string[] } {
  const lines: string[] = [];
  return { log: pino({ level }, { write: (line: string) => void lines.push(line) }), lines };
}
