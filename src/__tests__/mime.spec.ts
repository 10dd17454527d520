/**
 * The notebook job output: its data checked field by field, and the lookup of its job
 * (the store, else GET jobs/{id} on a real HTTP server: found and followed on the
 * store's one stream, 404 named without following, no answer retried). The renderer
 * itself (ESM-only @jupyterlab/ui-components) is checked in the browser,
 * ui-tests/tests/notebook.spec.ts.
 */
import { ServerConnection } from '@jupyterlab/services';
import * as http from 'http';
import { AddressInfo } from 'net';

import type { Job, StreamMessage } from '../api';
import { JobsModel } from '../jobs/model';
import type { ISocket } from '../jobs/stream';
import { JobLookup } from '../mime/lookup';
import { MAX_LABEL_CHARS, parseJobPayload } from '../mime/payload';

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
  close(): void {
    this.closed = true;
  }
}

const job = (id: string, over: Partial<Job> = {}): Job => ({
  id,
  kind: 'train',
  state: 'running',
  message: '',
  progress: { done: 3, total: 10, unit: 'steps' },
  created_at: '2026-01-01T10:00:00.000Z',
  started_at: '2026-01-01T10:00:00.000Z',
  ended_at: null,
  dir: `cvat-train-runs/${id}`,
  outputs: {},
  spec: { kind: 'train', template: 't', dataset: 'd.zip' },
  ...over
});

describe('parseJobPayload', () => {
  it('takes {jobId, name, kind}; name and kind may be missing', () => {
    expect(
      parseJobPayload({ jobId: 'j-1.a_b', name: 'my run', kind: 'train' })
    ).toEqual({
      ok: true,
      payload: { jobId: 'j-1.a_b', name: 'my run', kind: 'train' }
    });
    expect(parseJobPayload({ jobId: 'j1' })).toEqual({
      ok: true,
      payload: { jobId: 'j1', name: '', kind: '' }
    });
  });

  it('cuts a long name', () => {
    const result = parseJobPayload({ jobId: 'j1', name: 'x'.repeat(5000) });
    expect(result.ok && result.payload.name.length).toBe(MAX_LABEL_CHARS);
    expect(result.ok && result.payload.name.endsWith('…')).toBe(true);
  });

  it.each([
    [null, 'is null, expected an object'],
    [[1], 'is a list, expected an object'],
    ['j1', 'is a string, expected an object'],
    [{}, 'has no "jobId"'],
    [{ jobId: '' }, 'has no "jobId"'],
    [{ jobId: 7 }, '"jobId" is a number, expected a string'],
    [{ jobId: '../etc' }, '"jobId" "../etc" is not a job id'],
    [{ jobId: '..' }, 'is not a job id'],
    [{ jobId: 'a/b' }, 'is not a job id'],
    [{ jobId: 'x'.repeat(129) }, 'at most 128 characters'],
    [{ jobId: 'j1', name: 3 }, '"name" is a number, expected a string'],
    [{ jobId: 'j1', kind: {} }, '"kind" is an object, expected a string']
  ])('refuses %j, naming the field and the fix', (data, expected) => {
    const result = parseJobPayload(data);
    expect(result.ok).toBe(false);
    if (!result.ok) {
      expect(result.problem).toContain(expected);
      expect(result.problem).toContain('display the job object again');
    }
  });

  it('quotes a long bad id cut short', () => {
    const result = parseJobPayload({ jobId: '/'.repeat(1000) });
    expect(!result.ok && result.problem.length).toBeLessThan(300);
  });
});

describe('JobLookup', () => {
  let server: http.Server;
  let settings: ServerConnection.ISettings;
  let jobs: Map<string, Job>;
  let failures: number;
  let requests: string[];
  let sockets: FakeSocket[];
  let store: JobsModel;

  beforeAll(async () => {
    server = http.createServer((req, res) => {
      const url = req.url ?? '';
      requests.push(url);
      const send = (status: number, body: unknown) => {
        res.writeHead(status, { 'Content-Type': 'application/json' });
        res.end(JSON.stringify(body));
      };
      if (failures > 0) {
        failures -= 1;
        send(500, { message: 'the store is locked', code: 500, details: null });
        return;
      }
      const one = url.match(/\/cvat-train\/api\/jobs\/([^/?]+)/);
      if (one) {
        const found = jobs.get(decodeURIComponent(one[1]));
        if (found) {
          send(200, found);
        } else {
          send(404, {
            message: `no job ${one[1]} in /runs`,
            code: 404,
            details: null
          });
        }
        return;
      }
      send(200, { jobs: [...jobs.values()] });
    });
    await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    settings = ServerConnection.makeSettings({
      baseUrl: `http://127.0.0.1:${port}/`
    });
  });

  afterAll(() => new Promise<void>(resolve => server.close(() => resolve())));

  beforeEach(() => {
    jobs = new Map();
    failures = 0;
    requests = [];
    sockets = [];
    store = new JobsModel({
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

  afterEach(() => store.dispose());

  const until = async (check: () => boolean) => {
    for (let i = 0; i < 1000 && !check(); i++) {
      await new Promise(r => setTimeout(r, 2));
    }
    expect(check()).toBe(true);
  };

  const lookupOf = (jobId: string) =>
    new JobLookup({ jobId, store, settings, retry: { first: 5, max: 10 } });

  it('finds a job the store lacks with GET jobs/{id}, and follows it on the store’s one stream', async () => {
    jobs.set('j1', job('j1'));
    const lookup = lookupOf('j1');
    lookup.start();
    expect(lookup.phase).toBe('checking');
    await until(() => lookup.phase === 'known');
    expect(lookup.job?.id).toBe('j1');
    expect(store.get('j1')?.state).toBe('running');
    // the store follows the unfinished job, the output shares that follower
    expect(sockets).toHaveLength(1);
    expect(lookup.follower).toBe(store.follow('j1'));
    store.release('j1');
    sockets[0].send({
      type: 'log',
      offset: 0,
      next_offset: 7,
      text: 'epoch 1\n'
    });
    expect(lookup.follower?.log.lines).toEqual(['epoch 1']);
    // a second output of the same job: no second socket
    const second = lookupOf('j1');
    second.start();
    expect(second.phase).toBe('known');
    expect(sockets).toHaveLength(1);
    second.dispose();
    lookup.dispose();
    expect(sockets[0].closed).toBe(false); // the store still follows the running job
  });

  it('says a job the server does not have is missing, and follows nothing', async () => {
    const lookup = lookupOf('nope');
    lookup.start();
    await until(() => lookup.phase === 'missing');
    expect(lookup.problem).toContain('no job nope');
    expect(lookup.follower).toBeNull();
    expect(sockets).toHaveLength(0);
    lookup.dispose();
  });

  it('retries while the server does not answer, then finds the job', async () => {
    jobs.set('j2', job('j2', { state: 'succeeded' }));
    failures = 2;
    const lookup = lookupOf('j2');
    const phases: string[] = [];
    lookup.changed.connect(() => phases.push(lookup.phase));
    lookup.start();
    await until(() => lookup.phase === 'known');
    expect(phases).toContain('unreachable');
    expect(requests.filter(r => r.includes('/jobs/j2'))).toHaveLength(3);
    // a finished job: only the output's reference keeps its follower (log and events)
    expect(sockets).toHaveLength(1);
    lookup.dispose();
    expect(sockets[0].closed).toBe(true);
  });

  it('turns missing when the job is deleted while shown', async () => {
    jobs.set('j3', job('j3'));
    const lookup = lookupOf('j3');
    lookup.start();
    await until(() => lookup.phase === 'known');
    sockets[0].send({ type: 'error', message: 'job j3 was deleted' });
    expect(lookup.phase).toBe('missing');
    expect(lookup.follower).toBeNull();
    lookup.dispose();
  });
});
