/**
 * The API client against a real HTTP server on 127.0.0.1 (Node's http module) that
 * answers as the server extension does: URLs under the server's base_url, the token and
 * XSRF headers, JSON bodies, and {message, code, details} error replies.
 */
import { ServerConnection } from '@jupyterlab/services';
import * as http from 'http';
import { AddressInfo } from 'net';

import {
  ApiRequestError,
  createJob,
  deleteJob,
  getJobLog,
  getVersion,
  jobStreamURL,
  requestAPI,
  TrainSpec
} from '../api';

interface IRecorded {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: string;
}

type Reply = { status: number; type?: string; body?: string };

const replies: Record<string, Reply> = {
  'GET /base/cvat-train/api/version': {
    status: 200,
    body: JSON.stringify({ version: '9.8.7' })
  },
  'POST /base/cvat-train/api/jobs': {
    status: 422,
    body: JSON.stringify({
      message:
        "dataset: 'broken' has validation errors; fix them and try again",
      code: 422,
      details: { ok: false, errors: [{ code: 'missing-image' }] }
    })
  },
  'DELETE /base/cvat-train/api/jobs/a%20b?remove_files=true': { status: 204 },
  'GET /base/cvat-train/api/jobs/j1/log?offset=12': {
    status: 200,
    body: JSON.stringify({
      offset: 12,
      next_offset: 20,
      text: 'line 2\n',
      state: 'running'
    })
  },
  'GET /base/cvat-train/api/behind-a-proxy': {
    status: 502,
    type: 'text/html',
    body: '<html><body>Bad Gateway</body></html>'
  }
};

let server: http.Server;
let requests: IRecorded[];
let settings: ServerConnection.ISettings;

beforeAll(async () => {
  server = http.createServer((req, res) => {
    let body = '';
    req.on('data', chunk => (body += chunk));
    req.on('end', () => {
      // ServerConnection adds a cache-busting timestamp to every URL: drop it.
      const url = (req.url ?? '').replace(/[?&]\d{13}$/, '');
      requests.push({
        method: req.method ?? '',
        url,
        headers: req.headers,
        body
      });
      const reply = replies[`${req.method} ${url}`] ?? {
        status: 404,
        body: JSON.stringify({
          message: `no route ${url}`,
          code: 404,
          details: null
        })
      };
      res.writeHead(reply.status, {
        'Content-Type': reply.type ?? 'application/json'
      });
      res.end(reply.body);
    });
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
  requests = [];
  document.cookie = '_xsrf=xsrf-value';
});

describe('requestAPI', () => {
  it('calls a route under base_url with the token and the XSRF header', async () => {
    expect(await getVersion(settings)).toEqual({ version: '9.8.7' });
    expect(requests).toHaveLength(1);
    const [request] = requests;
    expect(request.method).toBe('GET');
    expect(request.url).toBe('/base/cvat-train/api/version');
    expect(request.headers['authorization']).toBe('token secret-token');
    expect(request.headers['x-xsrftoken']).toBe('xsrf-value');
  });

  it('sends JSON and turns a {message, code} reply into an error with the server message', async () => {
    const spec: TrainSpec = {
      kind: 'train',
      template: 'ssdlite320-mobilenet-v3',
      dataset: 'broken',
      parameters: { epochs: '1' }
    };
    const error = await createJob(spec, settings).then(
      () => null,
      (e: unknown) => e
    );
    expect(error).toBeInstanceOf(ApiRequestError);
    expect(error).toBeInstanceOf(ServerConnection.ResponseError);
    const apiError = error as ApiRequestError;
    expect(apiError.message).toBe(
      "dataset: 'broken' has validation errors; fix them and try again"
    );
    expect(apiError.status).toBe(422);
    expect(apiError.reply?.details).toEqual({
      ok: false,
      errors: [{ code: 'missing-image' }]
    });
    const [request] = requests;
    expect(request.method).toBe('POST');
    expect(request.headers['content-type']).toBe('application/json');
    expect(JSON.parse(request.body)).toEqual(spec);
  });

  it('encodes job ids, resolves a 204 to null and passes offsets', async () => {
    expect(await deleteJob('a b', { removeFiles: true }, settings)).toBeNull();
    expect(requests[0].method).toBe('DELETE');
    const log = await getJobLog('j1', 12, settings);
    expect(log.next_offset).toBe(20);
    expect(requests[1].url).toBe('/base/cvat-train/api/jobs/j1/log?offset=12');
  });

  it('reports a reply that is not the API JSON with its status and a short excerpt', async () => {
    const error = (await requestAPI('behind-a-proxy', {}, settings).catch(
      (e: unknown) => e
    )) as ApiRequestError;
    expect(error).toBeInstanceOf(ApiRequestError);
    expect(error.reply).toBeNull();
    expect(error.status).toBe(502);
    expect(error.message).toContain('502');
    expect(error.message).toContain('Bad Gateway');
  });

  it('raises a NetworkError when the server cannot be reached', async () => {
    const closed = await new Promise<number>(resolve => {
      const s = http.createServer();
      s.listen(0, '127.0.0.1', () => {
        const { port } = s.address() as AddressInfo;
        s.close(() => resolve(port));
      });
    });
    const unreachable = ServerConnection.makeSettings({
      baseUrl: `http://127.0.0.1:${closed}/base/`
    });
    await expect(getVersion(unreachable)).rejects.toBeInstanceOf(
      ServerConnection.NetworkError
    );
  });
});

describe('jobStreamURL', () => {
  it('is the websocket URL under base_url with the offsets and the token', () => {
    const url = new URL(
      jobStreamURL(
        'j 1',
        { log: 5, events: 7 },
        { ...settings, appendToken: true }
      )
    );
    expect(url.protocol).toBe('ws:');
    expect(url.pathname).toBe('/base/cvat-train/api/jobs/j%201/stream');
    expect(url.searchParams.get('log_offset')).toBe('5');
    expect(url.searchParams.get('events_offset')).toBe('7');
    expect(url.searchParams.get('token')).toBe('secret-token');
    const noToken = new URL(
      jobStreamURL('j1', {}, { ...settings, appendToken: false })
    );
    expect(noToken.searchParams.get('token')).toBeNull();
    expect(noToken.searchParams.get('log_offset')).toBe('0');
  });
});
