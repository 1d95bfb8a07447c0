// The client of bifrost_ext's REST API (`<base_url>api/packages/...`): one typed function per
// route, every request through ServerConnection.makeRequest so base_url, XSRF and tokens are
// handled. Failures are JupyterLab's own: ServerConnection.NetworkError when the server did not
// answer, ServerConnection.ResponseError (as PackagesError, which keeps the parsed body) when
// it answered with an error status.

import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';
import { createParser } from 'eventsource-parser';

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

/** One version a change moved (`old` null: newly installed; `new` null: removed). */
export interface IVersionChange {
  name: string;
  old: string | null;
  new: string | null;
}

/** A successful change's body (install, uninstall, rollback). */
export interface IChangeBody extends IRequirements {
  installed?: { name: string; version: string }[];
  changed?: boolean;
  warning?: string | null;
  /** Every version the change moved. */
  versions?: IVersionChange[];
  /** Those of `versions` the change did not name. */
  also_changed?: IVersionChange[];
  /** The server's one line for the change, as the magic and the CLI print it. */
  summary?: string;
  /** Dependencies a removal took away because nothing needs them any more. */
  orphans?: string[];
}

/** An error answer's body as bifrost words it (`kind`, `message`, an installer's `output`). */
export interface IErrorBody {
  kind?: string;
  message?: string;
  output?: string | string[];
  [key: string]: unknown;
}

/** How a change ended: the real status, and its body (a success's or an error's). */
export type IChangeResult =
  { status: 200; body: IChangeBody } | { status: number; body: IErrorBody };

/** `GET api/packages/index`'s `index`: which index is searched, and whether it answers. */
export interface IIndexInfo {
  /** `PyPI`, the index's host, or `find-links`. */
  label: string;
  kind: string;
  /** `full`: a project list is searched by prefix; `none`: exact names only. */
  list: 'full' | 'none';
  fetched_at: string | null;
  reachable: boolean;
  message: string | null;
}

/** `GET api/packages/index/search?q=`. */
export interface ISearchResult {
  query: string;
  mode: 'prefix' | 'exact';
  names: { name: string; display: string; saved?: boolean }[];
  more: boolean;
  index: IIndexInfo;
}

/** One version of a project, as `GET api/packages/index/project` lists it (newest first). */
export interface IProjectVersion {
  version: string;
  prerelease: boolean;
  yanked: boolean;
  yanked_reason: string | null;
  requires_python: string | null;
  /** Whether the default kernel's interpreter meets `requires_python`. */
  python_ok: boolean;
  upload_time: string | null;
}

/** `GET api/packages/index/project?name=`. */
export interface IProject {
  name: string;
  found: boolean;
  /** The version the saved lock pins, if the project is saved. */
  locked: string | null;
  versions: IProjectVersion[];
  /** Close names when the index does not have `name`. */
  close?: string[];
  index: IIndexInfo;
}

/** One edge of the dependency graph: what a package requires. */
export interface ITreeEdge {
  name: string;
  specifier: string;
  extra: string | null;
}

/** `GET api/packages/tree`: the current environment's graph, from its manifest. */
export interface ITree {
  workspace: string;
  hash: string;
  python: string;
  /** The requirement lines' canonical names, in their order. */
  roots: string[];
  nodes: Record<
    string,
    { version: string | null; requires: ITreeEdge[]; spec?: string }
  >;
  required_by: Record<string, string[]>;
}

/**
 * An error status from the packages API: JupyterLab's ResponseError, with the body bifrost
 * sent (its `kind`, `message` and `output` say what went wrong in the server's words).
 */
export class PackagesError extends ServerConnection.ResponseError {
  constructor(
    response: Response,
    readonly body: IErrorBody
  ) {
    super(
      response,
      typeof body.message === 'string' && body.message
        ? body.message
        : `HTTP ${response.status}`
    );
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

/** Parse a body as JSON; text that is not JSON becomes a message naming the status. */
function parseBody(response: Response, text: string): unknown {
  if (!text) {
    return {};
  }
  try {
    return JSON.parse(text);
  } catch {
    return {
      message: `the server answered ${response.status} with a body that is not JSON`,
      notJSON: true
    };
  }
}

/** Send a request to any server URL and return its JSON body (NetworkError, PackagesError). */
async function fetchJSON<T>(
  settings: ServerConnection.ISettings,
  url: string,
  init: RequestInit
): Promise<T> {
  // makeRequest throws ServerConnection.NetworkError when there is no answer at all.
  const response = await ServerConnection.makeRequest(url, init, settings);
  const body = parseBody(response, await response.text());
  const isObject = typeof body === 'object' && body !== null;
  if (!response.ok || (isObject && 'notJSON' in body)) {
    throw new PackagesError(response, isObject ? (body as IErrorBody) : {});
  }
  return body as T;
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

/** `GET api/packages/index`. */
export async function getIndexInfo(
  settings: ServerConnection.ISettings
): Promise<IIndexInfo> {
  return (await requestAPI<{ index: IIndexInfo }>(settings, 'index')).index;
}

/** `GET api/packages/index/search?q=&limit=`: project names that start with `query`. */
export function searchIndex(
  settings: ServerConnection.ISettings,
  query: string,
  limit = 20
): Promise<ISearchResult> {
  return requestQuery<ISearchResult>(settings, 'index/search', {
    q: query,
    limit
  });
}

/** `GET api/packages/index/project?name=`: the versions the index has, newest first. */
export function getProject(
  settings: ServerConnection.ISettings,
  name: string
): Promise<IProject> {
  return requestQuery<IProject>(settings, 'index/project', { name });
}

/** `GET api/packages/tree`. */
export function getTree(settings: ServerConnection.ISettings): Promise<ITree> {
  return requestAPI<ITree>(settings, 'tree');
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
 * POST a change with `Accept: text/event-stream`: `onOutput` gets each installer line as it
 * arrives, and the answer is the final `result` event (its status may be an error). Only a
 * failure to talk to the server at all throws: NetworkError, or for a stream that ends
 * without its result a NetworkError too (the change's outcome is unknown; the panel reads
 * the requirements again). Sent once: nothing here retries a POST.
 */
export async function change(
  settings: ServerConnection.ISettings,
  route: ChangeRoute,
  body: object,
  onOutput: (line: string) => void
): Promise<IChangeResult> {
  const url = URLExt.join(settings.baseUrl, 'api/packages', route);
  const response = await ServerConnection.makeRequest(
    url,
    {
      method: 'POST',
      body: JSON.stringify(body),
      headers: {
        Accept: 'text/event-stream',
        'Content-Type': 'application/json',
        // The history says a change came from the panel (a label for people, no authority).
        'X-Bifrost-Client': 'panel'
      }
    },
    settings
  );
  const type = response.headers.get('Content-Type') ?? '';
  if (!type.includes('text/event-stream') || !response.body) {
    // Not a stream (the fast path, refused before the change began, a proxy's error page):
    // the HTTP status is the answer.
    const text = await response.text();
    let parsed = parseBody(response, text);
    if (typeof parsed !== 'object' || parsed === null || 'notJSON' in parsed) {
      parsed = { message: text.slice(0, 200) };
    }
    return { status: response.status, body: parsed } as IChangeResult;
  }
  let result: IChangeResult | null = null;
  const parser = createParser({
    onEvent: event => {
      if (event.event === 'output') {
        onOutput(String(JSON.parse(event.data)));
      } else if (event.event === 'result') {
        result = JSON.parse(event.data) as IChangeResult;
      }
    }
  });
  const decoder = new TextDecoder();
  const reader = response.body.getReader();
  let last = '';
  const feed = (text: string) => {
    if (text) {
      parser.feed(text);
      last = text;
    }
  };
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) {
        break;
      }
      feed(decoder.decode(value, { stream: true }));
    }
    feed(decoder.decode());
    if (last.endsWith('\r')) {
      // A stream that ends on CR: the parser waits for a LF that may follow it, and none will.
      parser.feed('\n');
    }
  } catch (error) {
    throw new ServerConnection.NetworkError(
      error instanceof TypeError ? error : new TypeError(String(error))
    );
  }
  if (result === null) {
    throw new ServerConnection.NetworkError(
      new TypeError('the stream ended without a result')
    );
  }
  return result;
}
