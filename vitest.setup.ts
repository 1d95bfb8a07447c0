// Node has no `navigator` before v21; @lumino/domutils reads it when @jupyterlab/ui-components
// (VDomModel) is imported. The unit tests touch no DOM: an empty platform is enough.
if (typeof globalThis.navigator === 'undefined') {
  Object.defineProperty(globalThis, 'navigator', {
    value: { platform: '', userAgent: 'node' },
    configurable: true
  });
}
