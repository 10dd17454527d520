/**
 * The job store: GET jobs from a real HTTP server, the per-job streams through sockets
 * the test drives (state, progress, log, end, drops and resumes, deletion).
 */
import { ServerConnection } from '@jupyterlab/services';
import * as http from 'http';
import { AddressInfo } from 'net';

import type { Job, StreamMessage } from '../api';
import { JobsModel } from '../jobs/model';
import type { ISocket } from '../jobs/stream';

class FakeSocket implements ISocket {
  constructor(readonly url: string) {}
  onopen: ((ev: unknown) => void) | null = null;
  onmessage: ((ev: { data: unknown }) => void) | null = null;
  onclose: ((ev: { code: number }) => void) | null = null;
  onerror: ((ev: unknown) => void) | null = null;
  closed = false;
  send(message: StreamMessage): void {
    this.onmessage?.({ data: JSON.stringify(message) });
  }
  /** The server (or the network) drops the connection. */
  drop(): void {
    this.closed = true;
    this.onclose?.({ code: 1006 });
  }
  close(): void {
    this.closed = true;
  }
  query(name: string): string | null {
    return new URL(this.url).searchParams.get(name);
  }
}

const job = (id: string, over: Partial<Job> = {}): Job => ({
  id,
  kind: 'train',
  state: 'running',
  message: '',
  progress: { done: 0, total: 10, unit: 'steps' },
  created_at: `2026-01-01T10:00:0${id.slice(-1)}.000Z`,
  started_at: `2026-01-01T10:00:0${id.slice(-1)}.000Z`,
  ended_at: null,
  dir: `cvat-train-runs/${id}`,
  outputs: {},
  spec: { kind: 'train', template: 't', dataset: 'd.zip' },
  ...over
});

let server: http.Server;
let settings: ServerConnection.ISettings;
let listed: Job[];
let sockets: FakeSocket[];
let model: JobsModel;

beforeAll(async () => {
  server = http.createServer((req, res) => {
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify({ jobs: listed }));
  });
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  settings = ServerConnection.makeSettings({
    baseUrl: `http://127.0.0.1:${port}/`
  });
});

afterAll(() => new Promise<void>(resolve => server.close(() => resolve())));

beforeEach(() => {
  sockets = [];
  model = new JobsModel({
    settings,
    pollInterval: 0,
    backoff: { first: 1, max: 2 },
    createSocket: url => {
      const socket = new FakeSocket(url);
      sockets.push(socket);
      return socket;
    }
  });
});

afterEach(() => model.dispose());

const until = async (check: () => boolean) => {
  for (let i = 0; i < 500 && !check(); i++) {
    await new Promise(r => setTimeout(r, 2));
  }
  expect(check()).toBe(true);
};

describe('JobsModel', () => {
  it('lists jobs newest first and follows only the unfinished ones', async () => {
    listed = [
      job('j1', { state: 'succeeded', ended_at: '2026-01-01T10:01:00.000Z' }),
      job('j2'),
      job('j3', { state: 'queued' })
    ];
    const ended: string[] = [];
    model.jobEnded.connect((_, j) => ended.push(j.id));
    await model.refresh();
    expect(model.jobs.map(j => j.id)).toEqual(['j3', 'j2', 'j1']);
    expect(
      sockets.map(s => s.url.match(/jobs\/(\w+)\/stream/)?.[1]).sort()
    ).toEqual(['j2', 'j3']);
    expect(model.counts()).toMatchObject({
      running: 1,
      queued: 1,
      succeeded: 1
    });
    expect(ended).toEqual([]); // finished before we looked: no notification
  });

  it('moves progress from events and says once when a watched job ends', async () => {
    listed = [job('j1')];
    const ended: Job[] = [];
    model.jobEnded.connect((_, j) => ended.push(j));
    await model.refresh();
    const [socket] = sockets;
    socket.send({ type: 'state', job: job('j1') });
    socket.send({
      type: 'event',
      offset: 0,
      next_offset: 40,
      event: { type: 'progress', done: 4, total: 10, unit: 'steps' }
    });
    expect(model.get('j1')?.progress.done).toBe(4);
    const done = job('j1', {
      state: 'succeeded',
      ended_at: '2026-01-01T10:02:00.000Z',
      progress: { done: 10, total: 10, unit: 'steps' }
    });
    socket.send({ type: 'end', job: done });
    socket.drop(); // the server closes after end: no reconnect
    await model.refresh(); // a stale list (still running) neither revives it nor notifies again
    expect(model.get('j1')?.state).toBe('succeeded');
    expect(ended.map(j => [j.id, j.state])).toEqual([['j1', 'succeeded']]);
    expect(sockets).toHaveLength(1);
  });

  it('resumes a dropped stream from the offsets taken, showing no line twice', async () => {
    listed = [job('j1')];
    await model.refresh();
    const follower = model.follow('j1');
    const first = sockets[0];
    expect([first.query('log_offset'), first.query('events_offset')]).toEqual([
      '0',
      '0'
    ]);
    first.send({ type: 'log', offset: 0, next_offset: 8, text: 'line 1\nl' });
    first.send({
      type: 'event',
      offset: 0,
      next_offset: 20,
      event: { type: 'metrics', epoch: 1, map: 0.1 }
    });
    first.drop();
    expect(follower.status).toBe('reconnecting');
    await until(() => sockets.length === 2);
    const second = sockets[1];
    expect([second.query('log_offset'), second.query('events_offset')]).toEqual(
      ['8', '20']
    );
    // a server that resumes from an older line start sends bytes we have: cut, not repeated
    second.send({
      type: 'log',
      offset: 7,
      next_offset: 21,
      text: 'line 2\nline 3\n'
    });
    second.send({
      type: 'event',
      offset: 0,
      next_offset: 20,
      event: { type: 'metrics', epoch: 1, map: 0.1 }
    });
    expect(follower.log.lines).toEqual(['line 1', 'line 2', 'line 3']);
    expect(follower.events).toHaveLength(1);
    model.release('j1');
  });

  it('drops a job deleted on the server (stream error or gone from the list)', async () => {
    listed = [job('j1'), job('j2', { state: 'failed', message: 'boom' })];
    const removed: string[] = [];
    model.jobRemoved.connect((_, id) => removed.push(id));
    await model.refresh();
    sockets[0].send({ type: 'error', message: 'job j1 was deleted' });
    expect(model.get('j1')).toBeUndefined();
    model.update(job('j1')); // a late reply does not bring it back
    expect(model.get('j1')).toBeUndefined();
    listed = [];
    await model.refresh();
    expect(model.jobs).toEqual([]);
    expect(removed.sort()).toEqual(['j1', 'j2']);
  });

  it('keeps a job created while a list request was under way, and ends the view of a job the server lacks', async () => {
    listed = [];
    const pending = model.refresh(); // asked before the job exists
    model.update(job('j5', { state: 'queued' })); // POST jobs answered meanwhile
    await pending;
    expect(model.get('j5')?.state).toBe('queued');
    const ghost = model.follow('j9'); // a view restored after a reload, for a job gone since
    await model.refresh();
    expect(model.get('j5')).toBeUndefined(); // the next list, asked after: it is gone
    expect(ghost.status).toBe('deleted');
    model.release('j9');
  });

  it('says when the server does not answer, and recovers', async () => {
    const down = new JobsModel({
      settings: ServerConnection.makeSettings({
        baseUrl: 'http://127.0.0.1:9/'
      }),
      pollInterval: 0
    });
    await expect(down.refresh()).rejects.toBeTruthy();
    expect(down.reachability).toBe('unreachable');
    down.dispose();
    listed = [];
    await model.refresh();
    expect(model.reachability).toBe('ok');
  });
});
