// Reading the kernel's user_expressions answer: the report as application/json.
import { describe, expect, it } from 'vitest';

import { decodeKernelReport } from './kernelreport';

describe('decodeKernelReport', () => {
  it('reads the loaded versions, canonicalizing names', () => {
    // What IPython sends for report(): its _repr_json_ as application/json.
    const loaded = { pandas: '2.2.3', 'Zope.Interface': '6.0', café: '1' };
    expect(
      decodeKernelReport({
        status: 'ok',
        data: {
          'text/plain': 'KernelReport(...)',
          'application/json': { loaded }
        },
        metadata: {}
      })
    ).toEqual({
      pandas: '2.2.3',
      'zope-interface': '6.0',
      café: '1'
    });
  });

  it('is null for a kernel without bifrost or an answer it cannot read', () => {
    expect(
      decodeKernelReport({
        status: 'error',
        ename: 'ModuleNotFoundError',
        evalue: 'x'
      })
    ).toBeNull();
    expect(
      decodeKernelReport({ status: 'ok', data: { 'text/plain': 'None' } })
    ).toBeNull();
    expect(
      decodeKernelReport({ status: 'ok', data: { 'application/json': [1] } })
    ).toBeNull();
    expect(
      decodeKernelReport({ status: 'ok', data: { 'application/json': null } })
    ).toBeNull();
    expect(decodeKernelReport(undefined)).toBeNull();
  });
});
