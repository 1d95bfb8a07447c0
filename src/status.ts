// The status strip's items in the user's words, from `GET api/packages/status`: pure, so the
// wording (builds for a kernel start, servers out of sync) is unit-tested.

import type { TranslationBundle } from '@jupyterlab/translation';

import type { IBuild, IBuildPurpose, IStatus } from './api';

/** One item of the strip: its words and whether it is healthy. */
export interface IStatusItem {
  key: string;
  text: string;
  ok: boolean;
}

/** Who a build is for, from its `purpose` (a kernel start, a sync, alice's install). */
export function buildPurpose(
  purpose: IBuildPurpose,
  trans: TranslationBundle
): string {
  switch (purpose.kind) {
    case 'kernel-start':
      return trans.__('a kernel start');
    case 'sync':
      return trans.__('a sync');
    case 'retry':
      return trans.__('a retry after a failed build');
    case 'change':
      return purpose.user
        ? trans.__("%1's install", purpose.user)
        : (purpose.source ?? trans.__('a change'));
  }
}

/** "installing 7 packages for a kernel start…" */
export function describeBuild(build: IBuild, trans: TranslationBundle): string {
  return trans._n(
    'installing %1 package for %2…',
    'installing %1 packages for %2…',
    build.packages,
    buildPurpose(build.purpose, trans)
  );
}

/** Every item of the strip, in the order shown. */
export function statusItems(
  status: IStatus,
  trans: TranslationBundle
): IStatusItem[] {
  const items: IStatusItem[] = [
    {
      key: 'workspace',
      text: trans.__('Workspace: %1', status.workspace),
      ok: true
    }
  ];
  const reason = (error?: string | null): string =>
    error ?? trans.__('no reason given');
  const item = (key: string, text: string, ok: boolean): IStatusItem => ({
    key,
    text,
    ok
  });
  const db = status.database;
  items.push(
    db.ok
      ? item('database', trans.__('Database: ok'), true)
      : item(
          'database',
          trans.__('Database: unavailable (%1)', reason(db.error)),
          false
        )
  );
  const cache = status.cache;
  if (!cache.enabled) {
    items.push(item('cache', trans.__('Cache: off'), true));
  } else if (cache.ok) {
    items.push(item('cache', trans.__('Cache: ok'), true));
  } else {
    items.push(
      item(
        'cache',
        trans.__('Cache: unavailable (%1)', reason(cache.error)),
        false
      )
    );
  }
  const dir = status.package_dir;
  items.push(
    dir.error
      ? {
          key: 'package-dir',
          text: trans.__('Packages: %1', dir.error),
          ok: false
        }
      : status.in_sync
        ? { key: 'package-dir', text: trans.__('Packages: in sync'), ok: true }
        : {
            key: 'package-dir',
            text: trans.__('Packages: not in sync'),
            ok: false
          }
  );
  if (cache.enabled && status.servers_in_sync === null) {
    // Servers report through Redis: while it does not answer, nobody can say they agree.
    items.push({
      key: 'servers',
      text: trans.__('Servers: unknown while the cache is unavailable'),
      ok: false
    });
  }
  for (const [id, server] of Object.entries(status.servers ?? {})) {
    const inSync = Boolean(db.hash) && server.hash === db.hash;
    items.push({
      key: `server-${id}`,
      text: inSync
        ? trans.__('Server %1: in sync', id)
        : trans.__('Server %1: not in sync', id),
      ok: inSync
    });
  }
  for (const build of status.builds ?? []) {
    items.push({
      key: `build-${build.hash}`,
      text: describeBuild(build, trans),
      ok: true
    });
  }
  const gateway = status.kernel_gateway;
  if (gateway) {
    // The server's one line, as its log says it: what kernels on the gateway do not get.
    const text = gateway.message;
    items.push({
      key: 'kernel-gateway',
      text: text.charAt(0).toUpperCase() + text.slice(1),
      ok: false
    });
  }
  return items;
}
