/**
 * The last `limitBytes` bytes of a stream, whatever its length: older bytes are dropped as new ones
 * arrive, so memory stays within the limit plus one chunk however much a hook writes.
 */
export class TailBuffer {
  private chunks: Buffer[] = [];
  private keptBytes = 0;
  private seenBytes = 0;

  constructor(readonly limitBytes: number) {
    if (!Number.isInteger(limitBytes) || limitBytes <= 0) throw new RangeError('limitBytes must be a positive integer');
  }

  append(chunk: Buffer): void {
    this.seenBytes += chunk.length;
    if (chunk.length >= this.limitBytes) {
      this.chunks = [Buffer.from(chunk.subarray(chunk.length - this.limitBytes))];
      this.keptBytes = this.limitBytes;
      return;
    }
    this.chunks.push(chunk);
    this.keptBytes += chunk.length;
    while (this.keptBytes > this.limitBytes) {
      const first = this.chunks[0] as Buffer;
      const excess = this.keptBytes - this.limitBytes;
      if (first.length <= excess) {
        this.chunks.shift();
        this.keptBytes -= first.length;
      } else {
        this.chunks[0] = first.subarray(excess);
        this.keptBytes -= excess;
      }
    }
  }

  /** Every byte written so far, kept or not. */
  get totalBytes(): number {
    return this.seenBytes;
  }

  /** Bytes written but no longer kept. */
  get droppedBytes(): number {
    return this.seenBytes - this.keptBytes;
  }

  /** The kept bytes as UTF-8; a character the cut split in two is left out rather than garbled. */
  text(): string {
    let tail = Buffer.concat(this.chunks, this.keptBytes);
    if (this.droppedBytes > 0) {
      let start = 0;
      // UTF-8 continuation bytes (10xxxxxx) at the start belong to a character that was cut.
      while (start < tail.length && start < 3 && ((tail[start] as number) & 0xc0) === 0x80) start += 1;
      tail = tail.subarray(start);
    }
    return tail.toString('utf8');
  }
}
