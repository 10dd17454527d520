/**
 * The text of a job's log as the panel shows it, built from pieces of job.log that
 * carry their byte offsets (the stream's `log` messages, `GET jobs/{id}/log`).
 *
 * The rules: a piece whose bytes were already taken is skipped (a reconnect that
 * resumes from an older offset, two sources racing); a piece that overlaps the end is
 * cut at the first new byte; lines are split on `\n`, a line rewritten with `\r` (a
 * progress bar) shows its last version; the last, unterminated line is kept apart until
 * its end arrives; only the last `maxLines` lines are kept (the first ones are counted
 * in `dropped`, so line numbers stay true).
 */
export class LogBuffer {
  /**
   * @param maxLines how many lines to keep (older ones are dropped); at least 1.
   */
  constructor(readonly maxLines = 5000) {
    this.maxLines = Math.max(1, Math.floor(maxLines));
  }

  /** The byte offset in job.log up to which the text was taken: resume from here. */
  get nextOffset(): number {
    return this._next;
  }

  /** How many complete lines were dropped from the front to keep `maxLines`. */
  get dropped(): number {
    return this._dropped;
  }

  /** The lines to show: the complete ones, then the unterminated last one if any. */
  get lines(): readonly string[] {
    return this._partial
      ? [...this._lines, cleanLine(this._partial)]
      : this._lines;
  }

  /** The number of lines `lines` has. */
  get length(): number {
    return this._lines.length + (this._partial ? 1 : 0);
  }

  /**
   * Take the log bytes [offset, nextOffset) whose UTF-8 text is `text`.
   *
   * @returns true when new text was taken, false when all of it was known already.
   */
  append(offset: number, nextOffset: number, text: string): boolean {
    if (nextOffset <= this._next || !text) {
      this._next = Math.max(this._next, nextOffset);
      return false;
    }
    if (offset < this._next) {
      text = dropLeadingBytes(text, this._next - offset);
    }
    this._next = nextOffset;
    if (!text) {
      return false;
    }
    const parts = (this._partial + text).split('\n');
    this._partial = parts.pop() ?? '';
    for (const part of parts) {
      this._lines.push(cleanLine(part));
    }
    const excess = this._lines.length - this.maxLines;
    if (excess > 0) {
      this._lines.splice(0, excess);
      this._dropped += excess;
    }
    return true;
  }

  /** Forget everything (e.g. the job was replaced). */
  clear(): void {
    this._lines = [];
    this._partial = '';
    this._next = 0;
    this._dropped = 0;
  }

  private _lines: string[] = [];
  private _partial = '';
  private _next = 0;
  private _dropped = 0;
}

/** A line as a terminal shows it: `\r` rewrites it, so the last segment wins. */
function cleanLine(line: string): string {
  const trimmed = line.endsWith('\r') ? line.slice(0, -1) : line;
  const cr = trimmed.lastIndexOf('\r');
  return cr >= 0 ? trimmed.slice(cr + 1) : trimmed;
}

/** `text` without its first `bytes` UTF-8 bytes (a cut inside a character drops it). */
export function dropLeadingBytes(text: string, bytes: number): string {
  const encoded = new TextEncoder().encode(text);
  if (bytes >= encoded.length) {
    return '';
  }
  let start = bytes;
  while (start < encoded.length && (encoded[start] & 0xc0) === 0x80) {
    start++; // a continuation byte: the character began before the cut
  }
  return new TextDecoder().decode(encoded.subarray(start));
}
