// The missing-import output's data, and the panel's offers made from it.
import { describe, expect, it } from 'vitest';

import { readMissingImport } from './missingimport';
import { PackagesModel } from './model';
import { fakeServer, json, trans } from './testing';

const sklearn = {
  module: 'sklearn',
  distribution: 'scikit-learn',
  command: '%bifrost install scikit-learn'
};

describe('readMissingImport', () => {
  it('reads what the kernel sends', () => {
    expect(readMissingImport(sklearn)).toEqual(sklearn);
  });

  it('refuses anything else', () => {
    expect(readMissingImport(null)).toBeNull();
    expect(readMissingImport('scikit-learn')).toBeNull();
    expect(readMissingImport({ ...sklearn, distribution: 7 })).toBeNull();
    // Never a spec with options or a URL, whatever an output says.
    expect(
      readMissingImport({ ...sklearn, distribution: '--index-url=http://x' })
    ).toBeNull();
    expect(
      readMissingImport({ ...sklearn, distribution: 'x @ https://evil/x.whl' })
    ).toBeNull();
  });
});

describe('missing-import offers', () => {
  function model(requirements: string[]) {
    const { settings } = fakeServer(request => {
      const path = new URL(request.url).pathname.replace('/user/alice/', '/');
      if (path === '/api/packages') {
        return json(200, {
          workspace: 'default',
          requirements,
          content: requirements.join('\n'),
          hash: 'h',
          locked: {}
        });
      }
      return undefined;
    });
    return new PackagesModel({ serverSettings: settings, trans });
  }

  it('offers each distribution once, until it is saved', async () => {
    const packages = model(['Scikit_Learn>=1']);
    packages.offerMissing(sklearn);
    packages.offerMissing({ ...sklearn, module: 'sklearn' });
    packages.offerMissing({
      module: 'yaml',
      distribution: 'PyYAML',
      command: '%bifrost install PyYAML'
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
