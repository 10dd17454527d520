import type { Job } from '../api';
import { syncDownTouches } from '../sync/refresh';

function job(kind: string, spec: Record<string, unknown> | null): Job {
  return { id: 'j1', kind, state: 'succeeded', spec } as unknown as Job;
}

const down = (workspace: string, extra: Record<string, unknown> = {}) =>
  job('sync', { direction: 'down', workspace, storage: 's3://b/p', ...extra });

describe('file browser refresh after a sync down', () => {
  it('refreshes a listing of the workspace, inside it or above it', () => {
    expect(syncDownTouches(down('data/ws'), 'data/ws')).toBe(true);
    expect(syncDownTouches(down('data/ws'), 'data/ws/images')).toBe(true);
    expect(syncDownTouches(down('data/ws'), 'data')).toBe(true);
    expect(syncDownTouches(down('data/ws'), '')).toBe(true);
    expect(syncDownTouches(down('data/ws/'), '/data/ws')).toBe(true);
    expect(syncDownTouches(down('.'), 'anything')).toBe(true);
  });

  it('leaves other folders, look-alike names and other jobs alone', () => {
    expect(syncDownTouches(down('data/ws'), 'data/ws2')).toBe(false);
    expect(syncDownTouches(down('data/ws'), 'other')).toBe(false);
    expect(syncDownTouches(down('data/ws2'), 'data/ws')).toBe(false);
    expect(syncDownTouches(down('/outside/root'), '')).toBe(false);
    expect(syncDownTouches(down('data/ws', { dry_run: true }), 'data/ws')).toBe(
      false
    );
    const up = job('sync', { direction: 'up', workspace: 'data/ws' });
    expect(syncDownTouches(up, 'data/ws')).toBe(false);
    expect(syncDownTouches(job('train', { workspace: 'data/ws' }), '')).toBe(
      false
    );
    expect(syncDownTouches(job('sync', null), '')).toBe(false);
  });
});
