// Decoding the kernel's user_expressions answer: a Python str repr holding JSON.
import { describe, expect, it } from 'vitest';

import { decodeKernelReport, decodePythonStr } from './kernelreport';

describe('decodePythonStr', () => {
  it("decodes repr's quoting and escapes", () => {
    expect(decodePythonStr(`'{"a": "1"}'`)).toBe('{"a": "1"}');
    expect(decodePythonStr(`"it's"`)).toBe("it's");
    expect(decodePythonStr(`'it\\'s "x"'`)).toBe(`it's "x"`);
    expect(decodePythonStr(`'a\\\\u00e9\\n\\x41\\u00e9'`)).toBe('a\\u00e9\nAé');
  });

  it('refuses what is not a str repr', () => {
    expect(() => decodePythonStr('{"a": 1}')).toThrow();
    expect(() => decodePythonStr(`'abc"`)).toThrow();
    expect(() => decodePythonStr(`'\\x4'`)).toThrow();
  });
});

describe('decodeKernelReport', () => {
  it('reads the loaded versions, canonicalizing names', () => {
    // What IPython sends for report() returning json.dumps(..., ensure_ascii=True).
    const plain = `'{"loaded": {"pandas": "2.2.3", "Zope.Interface": "6.0", "caf\\\\u00e9": "1"}}'`;
    expect(
      decodeKernelReport({ status: 'ok', data: { 'text/plain': plain } })
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
      decodeKernelReport({ status: 'ok', data: { 'text/plain': "'[1]'" } })
    ).toBeNull();
    expect(decodeKernelReport(undefined)).toBeNull();
  });
});
