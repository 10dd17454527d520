import {
  addRecent,
  formatBytes,
  MAX_RECENT,
  parseRecent,
  splitPatterns,
  syncProgress
} from '../sync/model';

describe('sync form helpers', () => {
  it('splits patterns on commas and new lines and drops blanks', () => {
    expect(splitPatterns(' *.zip, images/*\n\n*.txt ,')).toEqual([
      '*.zip',
      'images/*',
      '*.txt'
    ]);
    expect(splitPatterns('')).toEqual([]);
  });

  it('formats bytes in decimal units', () => {
    expect(formatBytes(0)).toBe('0 B');
    expect(formatBytes(999)).toBe('999 B');
    expect(formatBytes(1500)).toBe('1.5 kB');
    expect(formatBytes(12_300_000)).toBe('12.3 MB');
    expect(formatBytes(-1)).toBe('—');
  });

  it('keeps recent pairs newest first, without repeats, capped', () => {
    const pair = (i: number) => ({
      workspace: `ws${i}`,
      storage: `s3://b/${i}`,
      endpointUrl: ''
    });
    let recent = [pair(1), pair(2)];
    recent = addRecent(recent, pair(2));
    expect(recent.map(p => p.workspace)).toEqual(['ws2', 'ws1']);
    for (let i = 3; i < 20; i++) {
      recent = addRecent(recent, pair(i));
    }
    expect(recent).toHaveLength(MAX_RECENT);
    expect(recent[0].workspace).toBe('ws19');
  });

  it('reads back only well-formed pairs from the state DB', () => {
    expect(parseRecent(null)).toEqual([]);
    expect(parseRecent('x')).toEqual([]);
    expect(
      parseRecent([
        { workspace: 'a', storage: 's3://b', endpointUrl: '' },
        { workspace: 1, storage: 's3://b', endpointUrl: '' },
        null
      ])
    ).toEqual([{ workspace: 'a', storage: 's3://b', endpointUrl: '' }]);
  });
});

describe('syncProgress', () => {
  it('takes the latest progress event with files, bytes, rate and ETA', () => {
    const p = syncProgress([
      { type: 'progress', done: 10, total: 100, files_done: 1, files_total: 5 },
      { type: 'warning', message: 'x' },
      {
        type: 'progress',
        done: 40,
        total: 100,
        unit: 'bytes',
        files_done: 2,
        files_total: 5,
        rate: 20
      }
    ]);
    expect(p).toEqual({
      filesDone: 2,
      filesTotal: 5,
      bytesDone: 40,
      bytesTotal: 100,
      rate: 20,
      eta: 3000
    });
    expect(syncProgress([{ type: 'log' }])).toBeNull();
    expect(
      syncProgress([{ type: 'progress', done: -5, rate: -1 }])?.rate
    ).toBeNull();
  });
});
