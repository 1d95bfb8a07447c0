// @vitest-environment happy-dom
// The model's state transitions against a fake server, kernel and event stream.
import type { Event, Kernel } from '@jupyterlab/services';
import { Signal } from '@lumino/signaling';
import { describe, expect, it } from 'vitest';

import { EVENT_SCHEMA_ID, IKernelSource, PackagesModel } from './model';
import {
  ISeenRequest,
  changeStream,
  eventStream,
  fakeServer,
  json,
  trans
} from './testing';

/** A workspace on a fake server; `answerChange` decides what a change returns. */
function workspace(answerChange?: (r: ISeenRequest) => Response) {
  const state = {
    requirements: ['bfdemo==1.0'],
    locked: { bfdemo: '1.0' } as Record<string, string>,
    hash: 'h1',
    write: true
  };
  const { settings, seen } = fakeServer(request => {
    const path = new URL(request.url).pathname.replace('/user/alice/', '/');
    if (path === '/api/packages') {
      return json(200, {
        workspace: 'default',
        requirements: state.requirements,
        content: state.requirements.join('\n'),
        hash: state.hash,
        locked: state.locked
      });
    }
    if (path === '/api/packages/status') {
      return json(200, {
        workspace: 'default',
        database: { ok: true, hash: state.hash, version: 1 },
        cache: { enabled: false },
        package_dir: { hash: state.hash, complete: true, error: null },
        in_sync: true,
        servers: {},
        servers_in_sync: true,
        builds: []
      });
    }
    if (path === '/api/packages/history') {
      return json(200, { workspace: 'default', revisions: [] });
    }
    if (path === '/api/me') {
      return json(200, {
        permissions: { packages: state.write ? ['read', 'write'] : ['read'] }
      });
    }
    if (request.method === 'POST' && answerChange) {
      return answerChange(request);
    }
    return undefined;
  });
  return { state, settings, seen };
}

function fakeKernel(
  loaded: Record<string, string> | null
): Kernel.IKernelConnection {
  const bifrost =
    loaded === null
      ? { status: 'error', ename: 'ModuleNotFoundError' }
      : {
          status: 'ok',
          data: { 'application/json': { loaded } }
        };
  return {
    isDisposed: false,
    requestExecute: () => ({
      done: Promise.resolve({
        content: { status: 'ok', user_expressions: { bifrost } }
      })
    })
  } as unknown as Kernel.IKernelConnection;
}

class FakeKernels implements IKernelSource {
  readonly changed = new Signal<this, void>(this);
  kernel: Kernel.IKernelConnection | null = null;
  restarts = 0;
  async restart(): Promise<void> {
    this.restarts++;
  }
}

/** A model of the fake workspace whose notebook's kernel has loaded `loaded`. */
function withKernel(loaded: Record<string, string> | null) {
  const kernels = new FakeKernels();
  kernels.kernel = fakeKernel(loaded);
  const model = new PackagesModel({
    serverSettings: workspace().settings,
    trans,
    kernels
  });
  return { model, kernels };
}

function fakeEvents() {
  const stream = new Signal<unknown, Event.Emission>({});
  return { stream } as unknown as Event.IManager & {
    stream: Signal<unknown, Event.Emission>;
  };
}

async function until(condition: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 2000;
  while (!condition()) {
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${what}`);
    }
    await new Promise(resolve => setTimeout(resolve, 5));
  }
}

describe('PackagesModel', () => {
  it('refresh reads requirements, locked and loaded versions and permissions', async () => {
    const { model } = withKernel({ bfdemo: '0.9' });
    expect(model.loading).toBe(true);
    await model.refresh();
    expect(model.loading).toBe(false);
    expect(model.readOnly).toBe(false);
    expect(model.status?.workspace).toBe('default');
    expect(model.rows).toEqual([
      {
        name: 'bfdemo',
        spec: 'bfdemo==1.0',
        locked: '1.0',
        loaded: '0.9',
        stale: true
      }
    ]);
    model.dispose();
  });

  it('shows no loaded versions for a kernel without bifrost, or no kernel', async () => {
    const { model, kernels } = withKernel(null);
    await model.refresh();
    expect(model.rows[0]).toMatchObject({ loaded: null, stale: false });
    kernels.kernel = fakeKernel({ bfdemo: '1.0' });
    kernels.changed.emit();
    await until(
      () => model.rows[0].loaded === '1.0',
      'the new kernel’s report'
    );
    expect(model.rows[0].stale).toBe(false);
    model.dispose();
  });

  it('install streams the log, is busy meanwhile, then saves and refreshes', async () => {
    let release: (r: Response) => void = () => {};
    const { settings, state, seen } = workspace(
      () =>
        new Promise<Response>(
          resolve => (release = resolve)
        ) as unknown as Response
    );
    const model = new PackagesModel({ serverSettings: settings, trans });
    await model.refresh();
    const done = model.install(['bfdemo==2.0']);
    expect(model.busy).toBe('Installing bfdemo==2.0…');
    state.requirements = ['bfdemo==2.0'];
    state.locked = { bfdemo: '2.0' };
    state.hash = 'h2';
    await until(() => seen.some(r => r.method === 'POST'), 'the POST');
    release(
      eventStream(
        changeStream(['Resolved 1 package', 'Installed bfdemo'], 200, {
          workspace: 'default',
          installed: [{ name: 'bfdemo', version: '2.0' }],
          changed: true,
          warning: null
        })
      )
    );
    const outcome = await done;
    expect(outcome).toEqual({
      ok: true,
      message: "Installed bfdemo 2.0; saved to workspace 'default'",
      detail: undefined,
      restart: false
    });
    expect(model.busy).toBeNull();
    expect(model.log).toEqual(['Resolved 1 package', 'Installed bfdemo']);
    expect(model.message).toBe(outcome.message);
    expect(model.rows[0]).toMatchObject({ spec: 'bfdemo==2.0', locked: '2.0' });
  });

  it('streams installer lines through logChanged alone, never stateChanged', async () => {
    const { settings } = workspace(() =>
      eventStream(
        changeStream(['one', 'two', 'three'], 200, {
          workspace: 'default',
          changed: true
        })
      )
    );
    const model = new PackagesModel({ serverSettings: settings, trans });
    await model.refresh();
    const seen: string[] = [];
    model.logChanged.connect((_, change) =>
      seen.push(change.kind === 'reset' ? 'reset' : change.lines.join())
    );
    let states = 0;
    model.stateChanged.connect(() => states++);
    await model.install(['bfdemo']);
    expect(seen).toEqual(['reset', 'one', 'two', 'three']);
    // busy, done, the refresh: not one per line.
    expect(states).toBeLessThanOrEqual(4);
  });

  it("shows the server's summary and a removal's orphans", async () => {
    let summary: string | undefined =
      'Removed bfapp and bfdep (nothing else needs it)';
    const { settings } = workspace(() =>
      eventStream(
        changeStream([], 200, {
          workspace: 'default',
          changed: true,
          summary,
          orphans: ['bfdep']
        })
      )
    );
    const model = new PackagesModel({ serverSettings: settings, trans });
    expect((await model.remove('bfapp')).message).toBe(summary);
    summary = undefined;
    expect((await model.remove('bfapp')).message).toBe(
      "Removed bfapp; saved to workspace 'default' (also removed, nothing else needs them: bfdep)"
    );
  });

  it('a refused spec is an error and nothing changes', async () => {
    const { settings } = workspace(() =>
      eventStream(
        changeStream([], 400, {
          message: "invalid requirement 'bad spec': blank; nothing was saved",
          kind: 'invalid-requirement',
          spec: 'bad spec',
          reason: 'blank'
        })
      )
    );
    const model = new PackagesModel({ serverSettings: settings, trans });
    await model.refresh();
    const outcome = await model.install(['bad spec']);
    expect(outcome.ok).toBe(false);
    expect(model.error?.message).toBe(
      "invalid requirement 'bad spec': blank; nothing was saved"
    );
    expect(model.rows.map(r => r.spec)).toEqual(['bfdemo==1.0']);
  });

  it('422 keeps the output tail; 403 turns the panel read-only', async () => {
    let status = 422;
    const { settings } = workspace(() =>
      eventStream(
        changeStream(['error: no matching distribution'], status, {
          message: "'nope' not found in the package index; nothing was saved",
          kind: 'not-found',
          output: 'error: no matching distribution'
        })
      )
    );
    const model = new PackagesModel({ serverSettings: settings, trans });
    await model.install(['nope']);
    expect(model.error).toEqual({
      message: "'nope' not found in the package index; nothing was saved",
      detail: 'error: no matching distribution'
    });
    status = 403;
    await model.remove('bfdemo');
    expect(model.readOnly).toBe(true);
  });

  it('is read-only when the authorizer refuses write', async () => {
    const { settings, state } = workspace();
    state.write = false;
    const model = new PackagesModel({ serverSettings: settings, trans });
    await model.refresh();
    expect(model.readOnly).toBe(true);
  });

  it('sends each change to its route with its body', async () => {
    const { settings, seen } = workspace(() =>
      eventStream(
        changeStream([], 200, { workspace: 'default', changed: true })
      )
    );
    const model = new PackagesModel({ serverSettings: settings, trans });
    await model.upgrade('BFDemo[extra] ==1.0');
    await model.remove('bfdemo');
    expect((await model.rollback(3)).message).toBe(
      "Rolled back to revision 3; saved to workspace 'default'"
    );
    const posts = seen.filter(r => r.method === 'POST');
    expect(
      posts.map(r => [new URL(r.url).pathname, JSON.parse(r.body!)])
    ).toEqual([
      ['/user/alice/api/packages/install', { packages: ['BFDemo[extra]'] }],
      ['/user/alice/api/packages/uninstall', { packages: ['bfdemo'] }],
      ['/user/alice/api/packages/rollback', { revision: 3 }]
    ]);
  });

  it('refreshes on its event schema only', async () => {
    const { settings, seen } = workspace();
    const events = fakeEvents();
    const model = new PackagesModel({
      serverSettings: settings,
      trans,
      events
    });
    await model.refresh();
    const reads = () =>
      seen.filter(r => r.url.endsWith('/api/packages')).length;
    expect(reads()).toBe(1);
    events.stream.emit({
      schema_id: 'https://other.dev/x',
      version: '1'
    } as Event.Emission);
    await new Promise(resolve => setTimeout(resolve, 20));
    expect(reads()).toBe(1);
    events.stream.emit({
      schema_id: EVENT_SCHEMA_ID,
      version: '1'
    } as Event.Emission);
    await until(() => reads() === 2, 'a refresh after the event');
    model.dispose();
  });

  it('polls the status while visible and refreshes when the saved hash moved', async () => {
    const { settings, seen, state } = workspace();
    const model = new PackagesModel({ serverSettings: settings, trans });
    model.configure({ pollInterval: 0.02 });
    model.setVisible(true);
    await until(() => model.rows.length === 1, 'the first refresh');
    state.requirements = ['attrs==23.1', 'bfdemo==1.0'];
    state.hash = 'h9';
    await until(
      () => model.rows.length === 2,
      'a refresh after the hash changed'
    );
    model.setVisible(false);
    await new Promise(resolve => setTimeout(resolve, 30));
    const polls = seen.filter(r => r.url.endsWith('/status')).length;
    await new Promise(resolve => setTimeout(resolve, 80));
    expect(seen.filter(r => r.url.endsWith('/status')).length).toBe(polls);
    model.dispose();
  });

  it('restarts the kernel on request and reads its versions again', async () => {
    const { model, kernels } = withKernel({ bfdemo: '0.9' });
    await model.refresh();
    kernels.kernel = fakeKernel({ bfdemo: '1.0' });
    await model.restartKernel();
    expect(kernels.restarts).toBe(1);
    expect(model.rows[0]).toMatchObject({ loaded: '1.0', stale: false });
  });

  it('a failed read is a load error that the next good read clears', async () => {
    let down = true;
    const { settings } = fakeServer(() =>
      down
        ? json(503, { message: 'db down' })
        : json(200, { workspace: 'w', requirements: [] })
    );
    const model = new PackagesModel({ serverSettings: settings, trans });
    await model.refresh();
    expect(model.loadError?.message).toBe(
      'The database is unavailable; nothing was saved'
    );
    down = false;
    await model.refresh();
    expect(model.loadError).toBeNull();
  });
});
