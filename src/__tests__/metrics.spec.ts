import { bestEpoch, epochSeries } from '../jobs/metrics';
import { formatDuration, jobEta } from '../jobs/time';
import type { Job } from '../api';

describe('epochSeries', () => {
  it('takes metrics events by epoch, ignores others and malformed ones, keeps the last of a repeat', () => {
    const series = epochSeries([
      { type: 'progress', done: 1, total: 10 },
      {
        type: 'metrics',
        epoch: 2,
        loss: 1.5,
        map: 0.2,
        map_50: 0.4,
        per_label: { a: 0.1 }
      },
      { type: 'metrics', epoch: 1, loss: 2, map: 0.1, map_50: 0.3 },
      { type: 'metrics', epoch: 'x', map: 1 },
      {
        type: 'metrics',
        epoch: 2,
        loss: 1.4,
        map: 0.25,
        map_50: null,
        per_label: { a: 0.2, b: null }
      }
    ]);
    expect(series.map(m => [m.epoch, m.loss, m.map, m.map50])).toEqual([
      [1, 2, 0.1, 0.3],
      [2, 1.4, 0.25, null]
    ]);
    expect(series[1].perLabel).toEqual({ a: 0.2, b: null });
    expect(bestEpoch(series)?.epoch).toBe(2);
    expect(bestEpoch([])).toBeNull();
  });
});

describe('times', () => {
  const job: Job = {
    id: 'j',
    kind: 'train',
    state: 'running',
    message: '',
    progress: { done: 25, total: 100, unit: 'steps' },
    created_at: '2026-01-01T10:00:00.000Z',
    started_at: '2026-01-01T10:00:00.000Z',
    ended_at: null,
    dir: 'cvat-train-runs/j',
    outputs: {},
    spec: null
  };
  it('estimates the time left from the rate so far', () => {
    const now = Date.parse('2026-01-01T10:01:00.000Z'); // 60 s for 25 %
    expect(jobEta(job, now)).toBe(180000);
    expect(jobEta({ ...job, state: 'succeeded' }, now)).toBeNull();
    expect(
      jobEta({ ...job, progress: { done: 0, total: null, unit: null } }, now)
    ).toBeNull();
  });
  it('formats durations', () => {
    expect(formatDuration(12000)).toBe('12 s');
    expect(formatDuration(185000)).toBe('3 min 05 s');
    expect(formatDuration(3720000)).toBe('1 h 02 min');
    expect(formatDuration(null)).toBe('—');
  });
});
