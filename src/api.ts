// The client of bifrost_ext's REST API (`<base_url>api/packages/...`): one typed function per
// route, every request through ServerConnection so base_url, XSRF and tokens are handled.

import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

import { SSEParser } from './sse';

/** `GET api/packages`: the saved requirements and the versions their lock pins. */
export interface IRequirements {
  workspace: string;
  requirements: string[];
  content: string;
  hash: string;
  locked?: Record<string, string>;
  /** Why the saved content fails validation (written past bifrost; never installed). */
  saved_error?: string | null;
}

/** What one place holding the requirements says about them. */
export interface IStoreStatus {
  ok?: boolean;
  enabled?: boolean;
  hash?: string | null;
  version?: number | null;
  error?: string | null;
}

/** What a build is for, as the server gives it (`user` and `source` for a change). */
export interface IBuildPurpose {
  kind: 'kernel-start' | 'retry' | 'change' | 'sync';
  user: string | null;
  source: string | null;
}

/** A build under way on this server (`for`: the same purpose in the server's words). */
export interface IBuild {
  hash: string;
  packages: number;
  started_at: string;
  for: string;
  purpose: IBuildPurpose;
}

/** `GET api/packages/status`. */
export interface IStatus {
  workspace: string;
  database: IStoreStatus;
  cache: IStoreStatus;
  package_dir: {
    path?: string;
    hash?: string | null;
    version?: number | null;
    complete?: boolean;
    error?: string | null;
  };
  in_sync: boolean;
  servers: Record<string, { hash?: string | null; [key: string]: unknown }>;
  /** null: unknown (no Redis, or Redis down), never "in sync". */
  servers_in_sync: boolean | null;
  /** Why the servers' state is unknown (`unknown: Redis unavailable: …`). */
  servers_error?: string | null;
  builds?: IBuild[];
  saved_error?: string | null;
  /** Behind a kernel gateway (`--gateway-url`): where kernels run, and what they get. */
  kernel_gateway?: { url: string; message: string } | null;
  /** What the export menu offers: the server's one list (`bifrost_ext/exporters.py`). */
  export_formats?: IExportFormat[];
}

/** One saved change, as `GET api/packages/history` lists it (newest first). */
export interface IRevision {
  id: number;
  version: number;
  created_at: string;
  user: string | null;
  source: string;
  database_role?: string | null;
  hash: string;
  content: string;
  previous_content: string | null;
}

/** `GET api/packages/history`. */
export interface IHistory {
  workspace: string;
  revisions: IRevision[];
}

/** An export format `GET api/packages/export` knows, as the status lists it. */
export interface IExportFormat {
  format: string;
  filename: string;
  /** What the export menu calls it (translated as a message of its own). */
  label: string;
}

/** `GET api/packages/export`. */
export interface IExport {
  format: string;
  filename: string;
  content: string;
}

/** A successful change's body. */
export interface IChangeBody extends IRequirements {
  installed?: { name: string; version: string }[];
  changed?: boolean;
  warning?: string | null;
  /** Every version the change moved, and those of them it did not name. */
  versions?: { name: string; old: string | null; new: string | null }[];
  also_changed?: { name: string; old: string | null; new: string | null }[];
}

/** The final `result` event of a change: the real status and its body. */
export interface IChangeResult {
  status: number;
  body: Record<string, any>;
}

/** A request the server answered with an error status (or did not answer: status 0). */
export class APIError extends Error {
  constructor(
    readonly status: number,
    readonly body: Record<string, any>
  ) {
    super(typeof body.message === 'string' ? body.message : `HTTP ${status}`);
  }
}

/** The three routes that change the requirements. */
export type ChangeRoute = 'install' | 'uninstall' | 'rollback';

/** Send a request to `api/packages/<path>` and return its JSON body. */
export async function requestAPI<T>(
  settings: ServerConnection.ISettings,
  path = '',
  init: RequestInit = {}
): Promise<T> {
  const url = URLExt.join(settings.baseUrl, 'api/packages', path);
  return fetchJSON<T>(settings, url, init);
}

/** Send a request to any server URL and return its JSON body; errors become APIError. */
async function fetchJSON<T>(
  settings: ServerConnection.ISettings,
  url: string,
  init: RequestInit
): Promise<T> {
  const response = await send(settings, url, init);
  const text = await response.text();
  let body: any = {};
  if (text) {
    try {
      body = JSON.parse(text);
    } catch {
      throw new APIError(response.status, {
        message: `the server answered ${response.status} with a body that is not JSON`
      });
    }
  }
  if (!response.ok) {
    throw new APIError(
      response.status,
      typeof body === 'object' && body ? body : {}
    );
  }
  return body as T;
}

async function send(
  settings: ServerConnection.ISettings,
  url: string,
  init: RequestInit
): Promise<Response> {
  try {
    return await ServerConnection.makeRequest(url, init, settings);
  } catch (error) {
    throw new APIError(0, { message: String(error) });
  }
}

/** `GET api/packages`. */
export function getRequirements(
  settings: ServerConnection.ISettings
): Promise<IRequirements> {
  return requestAPI<IRequirements>(settings);
}

/** `GET api/packages/status`. */
export function getStatus(
  settings: ServerConnection.ISettings
): Promise<IStatus> {
  return requestAPI<IStatus>(settings, 'status');
}

/** `GET api/packages/history?limit=N`. */
export function getHistory(
  settings: ServerConnection.ISettings,
  limit: number
): Promise<IHistory> {
  return requestQuery<IHistory>(settings, 'history', { limit });
}

/** `GET api/packages/export?format=`. */
export function getExport(
  settings: ServerConnection.ISettings,
  format: string
): Promise<IExport> {
  return requestQuery<IExport>(settings, 'export', { format });
}

/** `GET api/packages/distribution?module=`: the server's name for what installs a module. */
export function getDistribution(
  settings: ServerConnection.ISettings,
  module: string
): Promise<unknown> {
  return requestQuery<unknown>(settings, 'distribution', { module });
}

/** `GET api/packages/<path>?<query>`, each value encoded. */
function requestQuery<T>(
  settings: ServerConnection.ISettings,
  path: string,
  query: Record<string, string | number>
): Promise<T> {
  return requestAPI<T>(settings, path + URLExt.objectToQueryString(query));
}

/** Whether the authorizer lets this user change packages (jupyter_server's `api/me`). */
export async function canWrite(
  settings: ServerConnection.ISettings
): Promise<boolean> {
  const query = encodeURIComponent(
    JSON.stringify({ packages: ['read', 'write'] })
  );
  const url = URLExt.join(settings.baseUrl, 'api/me') + `?permissions=${query}`;
  const me = await fetchJSON<{ permissions?: Record<string, string[]> }>(
    settings,
    url,
    {}
  );
  return (me.permissions?.packages ?? []).includes('write');
}

/**
 * POST a change with `Accept: text/event-stream`: `onOutput` gets each installer line as
 * it arrives, and the answer is the final `result` event (its status may be an error;
 * only a failure to talk to the server at all throws, as APIError with status 0 or the
 * HTTP status of an answer that is not a stream).
 */
export async function change(
  settings: ServerConnection.ISettings,
  route: ChangeRoute,
  body: object,
  onOutput: (line: string) => void
): Promise<IChangeResult> {
  const url = URLExt.join(settings.baseUrl, 'api/packages', route);
  const response = await send(settings, url, {
    method: 'POST',
    body: JSON.stringify(body),
    headers: {
      Accept: 'text/event-stream',
      'Content-Type': 'application/json',
      // The history says a change came from the panel (a label for people, no authority).
      'X-Bifrost-Client': 'panel'
    }
  });
  const type = response.headers.get('Content-Type') ?? '';
  if (!type.includes('text/event-stream') || !response.body) {
    // Not a stream (refused before the change began, a proxy's error page): the HTTP status
    // is the answer.
    const text = await response.text();
    let parsed: any = {};
    try {
      parsed = text ? JSON.parse(text) : {};
    } catch {
      parsed = { message: text.slice(0, 200) };
    }
    return { status: response.status, body: parsed };
  }
  const parser = new SSEParser();
  const decoder = new TextDecoder();
  const reader = response.body.getReader();
  let result: IChangeResult | null = null;
  const handle = (text: string) => {
    for (const event of parser.feed(text)) {
      if (event.event === 'output') {
        onOutput(String(JSON.parse(event.data)));
      } else if (event.event === 'result') {
        result = JSON.parse(event.data) as IChangeResult;
      }
    }
  };
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) {
        break;
      }
      handle(decoder.decode(value, { stream: true }));
    }
    handle(decoder.decode());
  } catch (error) {
    throw new APIError(0, { message: String(error) });
  }
  if (result === null) {
    throw new APIError(0, { message: 'the stream ended without a result' });
  }
  return result;
}
