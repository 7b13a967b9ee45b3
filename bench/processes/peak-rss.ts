import { readFileSync, writeFileSync } from "node:fs";

/**
 * Peak resident memory of one process, per measurement window. Linux keeps
 * the high-water mark in /proc/<pid>/status (VmHWM); writing "5" to
 * /proc/<pid>/clear_refs resets it, so each window reports its own peak
 * rather than the highest since start-up. Where that reset is refused, a
 * 100 ms poll of VmRSS stands in (it can miss short spikes).
 */
export class PeakRss {
  readonly #pid: number;
  #polled = 0;
  #resetWorks = false;
  #timer: NodeJS.Timeout | undefined;

  constructor(pid: number) {
    this.#pid = pid;
  }

  /** Starts a new window. */
  start(): void {
    try {
      writeFileSync(`/proc/${this.#pid}/clear_refs`, "5");
      this.#resetWorks = true;
    } catch {
      this.#resetWorks = false;
    }
    this.#polled = this.#read("VmRSS");
    clearInterval(this.#timer);
    this.#timer = setInterval(() => (this.#polled = Math.max(this.#polled, this.#read("VmRSS"))), 100);
    this.#timer.unref();
  }

  /** Ends the window; returns its peak in KiB. */
  stop(): number {
    clearInterval(this.#timer);
    this.#timer = undefined;
    const polled = Math.max(this.#polled, this.#read("VmRSS"));
    return this.#resetWorks ? Math.max(polled, this.#read("VmHWM")) : polled;
  }

  #read(field: "VmRSS" | "VmHWM"): number {
    try {
      const match = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(readFileSync(`/proc/${this.#pid}/status`, "utf8"));
      return match ? Number(match[1]) : 0;
    } catch {
      return 0;
    }
  }
}
