/**
 * The job backends in the panel: GET backends through a real HTTP server on 127.0.0.1
 * (answering as the server extension does), the Train form's "Run on" choice rendered,
 * and which jobs the job list and the job view mark as Ray jobs.
 */
import { ServerConnection } from '@jupyterlab/services';
import type { TranslationBundle } from '@jupyterlab/translation';
import * as http from 'http';
import { AddressInfo } from 'net';
import React from 'react';

import { type BackendList, type Job, listBackends } from '../api';
import { jobBackend } from '../jobs/backend';
import { BackendChoice } from '../train/backend';

// react-dom ships no types here (no @types/react-dom): the one function used, typed
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { renderToStaticMarkup } = require('react-dom/server') as {
  renderToStaticMarkup: (element: React.ReactElement) => string;
};

const trans = {
  __: (text: string, ...args: unknown[]) =>
    args.reduce<string>((t, a, i) => t.replace(`%${i + 1}`, String(a)), text)
} as unknown as TranslationBundle;

const reply: BackendList = {
  default: 'local',
  backends: [
    { id: 'local', name: 'This machine' },
    {
      id: 'ray',
      name: 'Ray cluster at http://head:8265',
      address: 'http://head:8265'
    }
  ]
};

let server: http.Server;
let urls: string[];
let settings: ServerConnection.ISettings;

beforeAll(async () => {
  server = http.createServer((req, res) => {
    const url = (req.url ?? '').replace(/[?&]\d{13}$/, '');
    urls.push(url);
    const ok = url === '/base/cvat-train/api/backends';
    res.writeHead(ok ? 200 : 404, { 'Content-Type': 'application/json' });
    res.end(
      JSON.stringify(
        ok ? reply : { message: `no route ${url}`, code: 404, details: null }
      )
    );
  });
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  settings = ServerConnection.makeSettings({
    baseUrl: `http://127.0.0.1:${port}/base/`,
    token: 'secret-token'
  });
});

afterAll(() => new Promise<void>(resolve => server.close(() => resolve())));

beforeEach(() => {
  urls = [];
});

describe('listBackends', () => {
  it('asks GET backends and gives the choices, local first', async () => {
    const got = await listBackends(settings);
    expect(urls).toEqual(['/base/cvat-train/api/backends']);
    expect(got.default).toBe('local');
    expect(got.backends.map(b => b.id)).toEqual(['local', 'ray']);
    expect(got.backends[1].address).toBe('http://head:8265');
  });
});

describe('jobBackend', () => {
  const job = (spec: Record<string, unknown>): Pick<Job, 'spec'> =>
    ({ spec }) as Pick<Job, 'spec'>;

  it('marks a job whose spec names ray, and no other', () => {
    expect(jobBackend(job({ kind: 'train', backend: 'ray' }))).toBe('ray');
    expect(jobBackend(job({ kind: 'train', backend: 'local' }))).toBeNull();
    expect(jobBackend(job({ kind: 'train' }))).toBeNull();
    expect(jobBackend({} as Pick<Job, 'spec'>)).toBeNull();
  });
});

describe('BackendChoice', () => {
  const render = (backends: BackendList | null, value = '') =>
    renderToStaticMarkup(
      <BackendChoice
        backends={backends}
        value={value}
        onChange={() => undefined}
        trans={trans}
      />
    );

  it('offers this machine and the cluster at its address, the default chosen', () => {
    const html = render(reply);
    expect(html).toContain('Run on');
    expect(html).toContain(
      '<option value="local" selected="">This machine</option>'
    );
    expect(html).toContain(
      '<option value="ray" title="http://head:8265">Ray cluster at http://head:8265</option>'
    );
  });

  it('shows the chosen backend, or the server default when none is chosen', () => {
    expect(render(reply, 'ray')).toContain(
      '<option value="ray" title="http://head:8265" selected="">'
    );
    expect(render({ ...reply, default: 'ray' })).toContain(
      '<option value="ray" title="http://head:8265" selected="">'
    );
  });

  it('is not shown without a cluster, or before the server said', () => {
    expect(render(null)).toBe('');
    expect(render({ default: 'local', backends: [reply.backends[0]] })).toBe(
      ''
    );
  });
});
