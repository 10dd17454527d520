/**
 * The REST client for the server extension: every request of the panel goes
 * through `requestAPI`, and the request/response shapes live here, so that the
 * server contract (`{base_url}cvat-train/api/...`) is read in one place.
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

/** Path of the extension's REST API below the server's base URL. */
export const API_NAMESPACE = 'cvat-train/api';

/** Request and response shapes of the server API. */
export namespace Api {
  /** `GET version`. */
  export interface IVersion {
    /** The Python package version, e.g. "0.1.0". */
    version: string;
  }

  /** The JSON body of every 4xx/5xx answer. */
  export interface IError {
    message: string;
    code: number;
    details?: unknown;
  }
}

/**
 * Call the server extension and parse its JSON answer.
 *
 * @param endPoint path below `{base_url}cvat-train/api/`, e.g. `version`.
 * @param init fetch options (method, body, ...); the XSRF and token headers are added
 *   by `ServerConnection.makeRequest`.
 * @param settings server settings; by default those of the running JupyterLab.
 * @returns the parsed JSON body (or the raw text when the body is not JSON).
 * @throws ServerConnection.NetworkError when the server cannot be reached;
 *   ServerConnection.ResponseError on a 4xx/5xx, with the server's `message`.
 */
export async function requestAPI<T>(
  endPoint = '',
  init: RequestInit = {},
  settings: ServerConnection.ISettings = ServerConnection.makeSettings()
): Promise<T> {
  const url = URLExt.join(settings.baseUrl, API_NAMESPACE, endPoint);
  let response: Response;
  try {
    response = await ServerConnection.makeRequest(url, init, settings);
  } catch (error) {
    throw new ServerConnection.NetworkError(error as TypeError);
  }
  const text = await response.text();
  let data: any = text;
  if (text.length > 0) {
    try {
      data = JSON.parse(text);
    } catch {
      // Not JSON (e.g. an HTML error page from a proxy): keep the text.
    }
  }
  if (!response.ok) {
    const message = (data as Api.IError)?.message ?? String(data);
    throw new ServerConnection.ResponseError(response, message);
  }
  return data as T;
}

/** `GET {base_url}cvat-train/api/version`. */
export function getVersion(
  settings?: ServerConnection.ISettings
): Promise<Api.IVersion> {
  return requestAPI<Api.IVersion>('version', {}, settings);
}
