// The API client: URLs under a base_url, JSON errors, network errors, the streaming change().
import { ServerConnection } from '@jupyterlab/services';
import { describe, expect, it } from 'vitest';

import {
  IErrorBody,
  PackagesError,
  canWrite,
  change,
  getExport,
  getHistory,
  getIndexInfo,
  getProject,
  getRequirements,
  getTree,
  requestAPI,
  searchIndex
} from './api';
import { changeStream, eventStream, fakeServer, json } from './testing';

describe('requestAPI', () => {
  it('joins routes under the base_url', async () => {
    const { settings, seen } = fakeServer(() =>
      json(200, { requirements: [] })
    );
    await getRequirements(settings);
    await getHistory(settings, 20);
    await getExport(settings, 'pep723');
    expect(seen.map(r => r.url)).toEqual([
      'http://localhost:8888/user/alice/api/packages',
      'http://localhost:8888/user/alice/api/packages/history?limit=20',
      'http://localhost:8888/user/alice/api/packages/export?format=pep723'
    ]);
  });

  it('works at the root base_url too', async () => {
    const { settings, seen } = fakeServer(
      () => json(200, {}),
      'http://localhost:8888/'
    );
    await requestAPI(settings, 'status');
    expect(seen[0].url).toBe('http://localhost:8888/api/packages/status');
  });

  it('turns an error status into a ResponseError carrying the JSON body', async () => {
    const { settings } = fakeServer(() =>
      json(503, { message: 'database down' })
    );
    const error = await getRequirements(settings).catch(e => e);
    expect(error).toBeInstanceOf(ServerConnection.ResponseError);
    expect(error).toBeInstanceOf(PackagesError);
    expect(error.response.status).toBe(503);
    expect(error.body).toEqual({ message: 'database down' });
    expect(error.message).toBe('database down');
  });

  it('turns an answer that is not JSON into a ResponseError', async () => {
    const { settings } = fakeServer(
      () => new Response('<html>proxy</html>', { status: 502 })
    );
    const error = await getRequirements(settings).catch(e => e);
    expect(error).toBeInstanceOf(PackagesError);
    expect(error.response.status).toBe(502);
  });

  it('turns a network failure into a NetworkError', async () => {
    const { settings } = fakeServer(() => {
      throw new TypeError('fetch failed');
    });
    const error = await getRequirements(settings).catch(e => e);
    expect(error).toBeInstanceOf(ServerConnection.NetworkError);
  });

  it('asks the index routes with their query encoded', async () => {
    const { settings, seen } = fakeServer(() =>
      json(200, { index: { label: 'PyPI' } })
    );
    await searchIndex(settings, 'pan', 5);
    await getProject(settings, 'a&b');
    await getTree(settings);
    expect(await getIndexInfo(settings)).toEqual({ label: 'PyPI' });
    expect(seen.map(r => r.url)).toEqual([
      'http://localhost:8888/user/alice/api/packages/index/search?q=pan&limit=5',
      'http://localhost:8888/user/alice/api/packages/index/project?name=a%26b',
      'http://localhost:8888/user/alice/api/packages/tree',
      'http://localhost:8888/user/alice/api/packages/index'
    ]);
  });
});

describe('canWrite', () => {
  it("asks jupyter_server's api/me for the packages permissions", async () => {
    const { settings, seen } = fakeServer(() =>
      json(200, { identity: {}, permissions: { packages: ['read', 'write'] } })
    );
    expect(await canWrite(settings)).toBe(true);
    const url = new URL(seen[0].url);
    expect(url.pathname).toBe('/user/alice/api/me');
    expect(JSON.parse(url.searchParams.get('permissions')!)).toEqual({
      packages: ['read', 'write']
    });
  });

  it('is false without write', async () => {
    const { settings } = fakeServer(() =>
      json(200, { identity: {}, permissions: { packages: ['read'] } })
    );
    expect(await canWrite(settings)).toBe(false);
  });
});

describe('change', () => {
  it('posts with Accept: text/event-stream, passes each output line, returns the result', async () => {
    const chunks = changeStream(
      ['Resolved 1 package', 'Installed bfdemo'],
      200,
      {
        workspace: 'default',
        changed: true
      }
    ).join('');
    const { settings, seen } = fakeServer(() =>
      // Split mid-event, as a network may.
      eventStream([chunks.slice(0, 17), chunks.slice(17, 60), chunks.slice(60)])
    );
    const lines: string[] = [];
    const result = await change(
      settings,
      'install',
      { packages: ['bfdemo'] },
      l => lines.push(l)
    );
    expect(seen[0].url).toBe(
      'http://localhost:8888/user/alice/api/packages/install'
    );
    expect(seen[0].method).toBe('POST');
    expect(seen[0].headers.get('Accept')).toBe('text/event-stream');
    expect(seen[0].headers.get('X-Bifrost-Client')).toBe('panel');
    expect(JSON.parse(seen[0].body!)).toEqual({ packages: ['bfdemo'] });
    expect(lines).toEqual(['Resolved 1 package', 'Installed bfdemo']);
    expect(result).toEqual({
      status: 200,
      body: { workspace: 'default', changed: true }
    });
  });

  it('returns an error status from the result event, not as an exception', async () => {
    const { settings } = fakeServer(() =>
      eventStream(
        changeStream([], 400, { message: 'no', spec: 'x y', reason: 'bad' })
      )
    );
    const result = await change(
      settings,
      'install',
      { packages: ['x y'] },
      () => {}
    );
    expect(result.status).toBe(400);
    expect((result.body as IErrorBody).reason).toBe('bad');
  });

  it('takes the HTTP status of an answer that is not a stream', async () => {
    const { settings } = fakeServer(() => json(403, { message: 'Forbidden' }));
    const result = await change(
      settings,
      'uninstall',
      { packages: ['x'] },
      () => {}
    );
    expect(result).toEqual({ status: 403, body: { message: 'Forbidden' } });
  });

  it('reads the same stream whatever the chunks are split at, LF, CRLF or CR', async () => {
    const stream = changeStream(['Resolved 1 package', 'Installed "x"'], 200, {
      changed: true
    }).join('');
    for (const text of [
      stream,
      stream.replace(/\n/g, '\r\n'),
      stream.replace(/\n/g, '\r')
    ]) {
      for (let cut = 0; cut <= text.length; cut += 3) {
        const { settings } = fakeServer(() =>
          eventStream([text.slice(0, cut), text.slice(cut)])
        );
        const lines: string[] = [];
        const result = await change(settings, 'install', {}, l =>
          lines.push(l)
        );
        expect(lines).toEqual(['Resolved 1 package', 'Installed "x"']);
        expect(result).toEqual({ status: 200, body: { changed: true } });
      }
    }
  });

  it('fails with a NetworkError when the stream ends without a result', async () => {
    const { settings } = fakeServer(() =>
      eventStream(['event: output\ndata: "x"\n\n'])
    );
    const error = await change(
      settings,
      'rollback',
      { revision: 1 },
      () => {}
    ).catch(e => e);
    expect(error).toBeInstanceOf(ServerConnection.NetworkError);
  });
});
