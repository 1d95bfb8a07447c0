// @vitest-environment happy-dom
// The missing-import output's data, the server's answer for it, and the panel's offers.
import { describe, expect, it } from 'vitest';

import { readMissingImport, readMissingOffer } from './missingimport';
import { PackagesModel } from './model';
import { fakeServer, json, trans } from './testing';

const sklearn = {
  module: 'sklearn',
  distribution: 'scikit-learn',
  workspace: 'default'
};

describe('readMissingImport', () => {
  it('reads the module, and nothing the output says installs it', () => {
    expect(
      readMissingImport({
        module: 'sklearn',
        distribution: 'bfapp',
        command: '%bifrost install bfapp'
      })
    ).toEqual({ module: 'sklearn' });
  });

  it('refuses anything but a plain module name', () => {
    expect(readMissingImport(null)).toBeNull();
    expect(readMissingImport('sklearn')).toBeNull();
    expect(readMissingImport({ module: 7 })).toBeNull();
    expect(readMissingImport({ module: 'sklearn.svm' })).toBeNull();
    expect(
      readMissingImport({ module: '<img src=x onerror=alert(1)>' })
    ).toBeNull();
    expect(readMissingImport({ module: '--index-url=http://x' })).toBeNull();
    expect(readMissingImport({ module: 'x'.repeat(101) })).toBeNull();
  });
});

describe('readMissingOffer', () => {
  it('reads what the server answers', () => {
    expect(readMissingOffer(sklearn)).toEqual(sklearn);
    expect(readMissingOffer({ ...sklearn, workspace: null })).toBeNull();
  });
});

describe('missing-import offers', () => {
  function model(requirements: string[]) {
    const { settings, seen } = fakeServer(request => {
      const url = new URL(request.url);
      const path = url.pathname.replace('/user/alice/', '/');
      if (path === '/api/packages') {
        return json(200, {
          workspace: 'default',
          requirements,
          content: requirements.join('\n'),
          hash: 'h',
          locked: {}
        });
      }
      if (path === '/api/packages/distribution') {
        const module = url.searchParams.get('module') ?? '';
        const table: Record<string, string> = {
          sklearn: 'scikit-learn',
          yaml: 'PyYAML'
        };
        return module === 'nope'
          ? json(400, { message: 'no' })
          : json(200, {
              module,
              distribution: table[module] ?? module,
              workspace: 'default'
            });
      }
      return undefined;
    });
    return {
      packages: new PackagesModel({ serverSettings: settings, trans }),
      seen
    };
  }

  it('asks the server what installs a module, once per module', async () => {
    const { packages, seen } = model([]);
    expect(await packages.resolveMissing('sklearn')).toEqual(sklearn);
    expect(await packages.resolveMissing('sklearn')).toEqual(sklearn);
    expect(await packages.resolveMissing('nope')).toBeNull();
    const asked = seen.filter(r => r.url.includes('/distribution'));
    expect(asked.map(r => new URL(r.url).searchParams.get('module'))).toEqual([
      'sklearn',
      'nope'
    ]);
  });

  it('offers each distribution once, until it is saved', async () => {
    const { packages } = model(['Scikit_Learn>=1']);
    packages.offerMissing(sklearn);
    packages.offerMissing({ ...sklearn });
    packages.offerMissing({
      module: 'yaml',
      distribution: 'PyYAML',
      workspace: 'default'
    });
    expect(packages.missing.map(m => m.distribution)).toEqual([
      'PyYAML',
      'scikit-learn'
    ]);
    await packages.refresh();
    // scikit-learn is saved now (under another spelling): no longer offered.
    expect(packages.missing.map(m => m.distribution)).toEqual(['PyYAML']);
  });
});
