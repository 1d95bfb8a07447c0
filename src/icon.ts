// The Packages panel's icon: an inline SVG (a box), themed through JupyterLab's icon classes.

import { LabIcon } from '@jupyterlab/ui-components';

const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24">
  <g class="jp-icon3" fill="#616161">
    <path d="M12 2 3 6.5v11L12 22l9-4.5v-11L12 2zm0 2.24 6.53 3.26L12 10.76 5.47 7.5 12 4.24zM5 9.12l6 3v7.76l-6-3V9.12zm8 10.76v-7.76l6-3v7.76l-6 3z"/>
  </g>
</svg>`;

export const packagesIcon = new LabIcon({
  name: 'bifrost-ext:packages',
  svgstr: svg
});
