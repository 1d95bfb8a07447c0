// The status strip's words.
import { describe, expect, it } from 'vitest';

import type { IStatus } from './api';
import { buildPurpose, statusItems } from './status';
import { trans } from './testing';

const STATUS: IStatus = {
  workspace: 'default',
  database: { ok: true, hash: 'h1', version: 3 },
  cache: { enabled: false },
  package_dir: {
    path: '/x',
    hash: 'h1',
    version: 3,
    complete: true,
    error: null
  },
  in_sync: true,
  servers: { a: { hash: 'h1' }, b: { hash: 'h0' } },
  servers_in_sync: false,
  builds: [
    {
      hash: 'h2',
      packages: 7,
      started_at: '2026-01-01T00:00:00Z',
      for: 'kernel start',
      purpose: { kind: 'kernel-start', user: null, source: null }
    }
  ]
};

describe('statusItems', () => {
  it('says each place in sync or not, and the builds under way', () => {
    expect(statusItems(STATUS, trans).map(i => [i.text, i.ok])).toEqual([
      ['Workspace: default', true],
      ['Database: ok', true],
      ['Cache: off', true],
      ['Packages: in sync', true],
      ['Server a: in sync', true],
      ['Server b: not in sync', false],
      ['installing 7 packages for a kernel start…', true]
    ]);
  });

  it('names failures', () => {
    const items = statusItems(
      {
        ...STATUS,
        database: { ok: false, error: 'connection refused' },
        cache: { enabled: true, ok: false, error: 'timeout' },
        in_sync: false,
        servers: {},
        servers_in_sync: null,
        builds: [
          {
            hash: 'h',
            packages: 1,
            started_at: '',
            for: 'api by alice',
            purpose: { kind: 'change', user: 'alice', source: 'api' }
          }
        ]
      },
      trans
    );
    expect(items.map(i => i.text)).toEqual([
      'Workspace: default',
      'Database: unavailable (connection refused)',
      'Cache: unavailable (timeout)',
      'Packages: not in sync',
      'Servers: unknown while the cache is unavailable',
      "installing 1 package for alice's install…"
    ]);
  });

  it("shows the server's line on the kernel gateway, as a warning", () => {
    const message =
      'kernels run on the kernel gateway at http://gw:8888: they get the saved packages' +
      ' only where bifrost_ext and its provisioner are installed on the gateway host';
    const items = statusItems(
      {
        ...STATUS,
        builds: [],
        kernel_gateway: { url: 'http://gw:8888', message }
      },
      trans
    );
    expect(items[items.length - 1]).toEqual({
      key: 'kernel-gateway',
      text: 'K' + message.slice(1),
      ok: false
    });
    expect(
      statusItems(STATUS, trans).some(i => i.key === 'kernel-gateway')
    ).toBe(false);
  });

  it('words what a build is for', () => {
    const change = {
      kind: 'change',
      user: 'bob',
      source: 'kernel 1234'
    } as const;
    expect(buildPurpose(change, trans)).toBe("bob's install");
    const sync = { kind: 'sync', user: null, source: null } as const;
    expect(buildPurpose(sync, trans)).toBe('a sync');
    const retry = { kind: 'retry', user: null, source: null } as const;
    expect(buildPurpose(retry, trans)).toBe('a retry after a failed build');
  });
});
