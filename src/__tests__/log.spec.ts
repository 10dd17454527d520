/**
 * LogBuffer: pieces of job.log with byte offsets, taken once each whatever the order
 * and overlap in which a reconnecting stream delivers them.
 */
import { dropLeadingBytes, LogBuffer } from '../jobs/log';

const bytes = (text: string) => new TextEncoder().encode(text).length;

/**
 * `text` cut after the given character counts (ascending) into offset-labelled pieces:
 * the server cuts at line starts, always between characters.
 */
function pieces(text: string, cuts: number[]): [number, number, string][] {
  const out: [number, number, string][] = [];
  let start = 0;
  for (const end of [...cuts, text.length]) {
    const piece = text.slice(start, end);
    const offset = bytes(text.slice(0, start));
    out.push([offset, offset + bytes(piece), piece]);
    start = end;
  }
  return out;
}

describe('LogBuffer', () => {
  it('splits lines and keeps the unterminated last line apart until its end comes', () => {
    const log = new LogBuffer();
    expect(log.append(0, 6, 'a\nbb\nc')).toBe(true);
    expect(log.lines).toEqual(['a', 'bb', 'c']);
    expect(log.append(6, 9, 'cc\n')).toBe(true);
    expect(log.lines).toEqual(['a', 'bb', 'ccc']);
    expect(log.nextOffset).toBe(9);
  });

  it('never shows a line twice when a reconnect resumes from an older offset', () => {
    const text = 'epoch 1\nepoch 2\nepoch 3\n';
    const log = new LogBuffer();
    log.append(0, 16, text.slice(0, 16));
    // the same bytes again, then a piece that overlaps the end, then a stale one
    expect(log.append(0, 16, text.slice(0, 16))).toBe(false);
    expect(log.append(8, bytes(text), text.slice(8))).toBe(true);
    expect(log.append(0, 8, text.slice(0, 8))).toBe(false);
    expect(log.lines).toEqual(['epoch 1', 'epoch 2', 'epoch 3']);
    expect(log.nextOffset).toBe(bytes(text));
  });

  it('gives the same lines for any split of the same bytes, multi-byte characters included', () => {
    const text = 'señal ✓\nзагрузка 50%\r загрузка 100%\nend';
    const whole = new LogBuffer();
    whole.append(0, bytes(text), text);
    for (const cuts of [[1], [3, 4, 5], [7, 8, 9, 20], [text.length - 1]]) {
      const split = new LogBuffer();
      for (const [start, end, piece] of pieces(text, cuts)) {
        // a duplicate of each piece, as a racing second source would send
        split.append(start, end, piece);
        split.append(start, end, piece);
      }
      expect(split.lines).toEqual(whole.lines);
    }
    expect(whole.lines).toEqual(['señal ✓', ' загрузка 100%', 'end']);
  });

  it('keeps the last maxLines lines and counts the dropped ones', () => {
    const log = new LogBuffer(3);
    const text = '1\n2\n3\n4\n5\n';
    log.append(0, bytes(text), text);
    expect(log.lines).toEqual(['3', '4', '5']);
    expect(log.dropped).toBe(2);
  });

  it('takes the offsets of an empty piece without adding a line', () => {
    const log = new LogBuffer();
    expect(log.append(0, 0, '')).toBe(false);
    expect(log.length).toBe(0);
  });
});

describe('dropLeadingBytes', () => {
  it('cuts by UTF-8 bytes, never inside a character', () => {
    expect(dropLeadingBytes('ab✓c', 2)).toBe('✓c');
    expect(dropLeadingBytes('ab✓c', 3)).toBe('c'); // inside ✓ (3 bytes): it is dropped
    expect(dropLeadingBytes('abc', 5)).toBe('');
  });
});
