/**
 * The Auto-annotate calls of the server API (jupyter_cvat_train/server/annotate.py):
 * a model folder's labels, what an annotate job would find at a path, and the files an
 * annotate job wrote (previews, the zip) as blobs, fetched with the token and XSRF
 * header like every other request (`ServerConnection.makeRequest`).
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

import {
  API_NAMESPACE,
  ApiRequestError,
  requestAPI,
  type AnnotateImages,
  type ApiError,
  type Job,
  type ModelLabels
} from '../api';
import { fileRoute } from './mapping';

/** `GET models/labels?path=`: the labels of a model folder (its classes.csv). */
export function getModelLabels(
  path: string,
  settings?: ServerConnection.ISettings
): Promise<ModelLabels> {
  return requestAPI<ModelLabels>(
    'models/labels' + URLExt.objectToQueryString({ path }),
    {},
    settings
  );
}

/** `GET annotate/images?path=`: the images (and an export's labels) at a path. */
export function getAnnotateImages(
  path: string,
  settings?: ServerConnection.ISettings
): Promise<AnnotateImages> {
  return requestAPI<AnnotateImages>(
    'annotate/images' + URLExt.objectToQueryString({ path }),
    {},
    settings
  );
}

function encodePath(path: string): string {
  return path
    .split('/')
    .map(part => encodeURIComponent(part))
    .join('/');
}

/**
 * A file an annotate job names (path relative to the server root, as in its outputs),
 * as a Blob: from `jobs/{id}/files/…` when it lies in the job's output folder, else
 * from the Contents API's `files/…`.
 *
 * @throws Error when the path is outside the server root; ApiRequestError (or
 *   ServerConnection.ResponseError) on a 4xx/5xx.
 */
export async function fetchJobFile(
  job: Pick<Job, 'id' | 'dir'>,
  path: string,
  settings: ServerConnection.ISettings = ServerConnection.makeSettings()
): Promise<Blob> {
  const route = fileRoute(job, path);
  if (!route) {
    throw new Error(
      `${path} is outside the server root: open it on the server`
    );
  }
  const url =
    route.kind === 'job'
      ? URLExt.join(
          settings.baseUrl,
          API_NAMESPACE,
          'jobs',
          encodeURIComponent(job.id),
          'files',
          encodePath(route.rel)
        )
      : URLExt.join(settings.baseUrl, 'files', encodePath(route.path));
  const response = await ServerConnection.makeRequest(url, {}, settings);
  if (!response.ok) {
    let reply: ApiError | null = null;
    try {
      reply = (await response.json()) as ApiError;
    } catch {
      reply = null;
    }
    throw new ApiRequestError(
      response,
      reply?.message ?? `${response.status} ${response.statusText}`,
      reply
    );
  }
  return response.blob();
}

/** Save a blob as a download named `name` (an anchor with an object URL). */
export function saveBlob(blob: Blob, name: string): void {
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  a.rel = 'noopener';
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}
