// A strict cursor over a received byte string: every read past the end and every byte left over
// is a FrameError.

import { FrameError } from '../../errors.js';

export class ByteReader {
  private off = 0;
  constructor(private readonly buf: Uint8Array, private readonly what: string) {}

  get remaining(): number {
    return this.buf.length - this.off;
  }

  private need(n: number): void {
    if (this.off + n > this.buf.length) throw new FrameError(`${this.what} truncated (${this.buf.length} bytes)`);
  }

  u8(): number {
    this.need(1);
    return this.buf[this.off++]!;
  }

  u16le(): number {
    this.need(2);
    const v = this.buf[this.off]! | (this.buf[this.off + 1]! << 8);
    this.off += 2;
    return v;
  }

  u24le(): number {
    this.need(3);
    const v = this.buf[this.off]! | (this.buf[this.off + 1]! << 8) | (this.buf[this.off + 2]! << 16);
    this.off += 3;
    return v;
  }

  i32le(): number {
    this.need(4);
    const b = this.buf;
    const o = this.off;
    this.off += 4;
    return b[o]! | (b[o + 1]! << 8) | (b[o + 2]! << 16) | (b[o + 3]! << 24);
  }

  bytes(n: number): Uint8Array {
    this.need(n);
    const v = copyBytes(this.buf, this.off, this.off + n);
    this.off += n;
    return v;
  }

  rest(): Uint8Array {
    return this.bytes(this.remaining);
  }

  /** Assert that everything was consumed. */
  end(): void {
    if (this.off !== this.buf.length) throw new FrameError(`${this.what} overlong (${this.buf.length} bytes)`);
  }
}

/** Little-endian writers with range checks done by the caller. */
export function le(v: number, n: 1 | 2 | 3 | 4): number[] {
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push((v >>> (8 * i)) & 0xff);
  return out;
}

/** A plain Uint8Array copy of a range (also when given a Node Buffer, whose slice() is a view). */
export function copyBytes(b: Uint8Array, start = 0, end = b.length): Uint8Array {
  return Uint8Array.from(b.subarray(start, end));
}
