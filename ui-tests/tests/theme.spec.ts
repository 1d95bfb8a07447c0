/** The panel in JupyterLab Dark: rendered with the theme's colours, and a kept screenshot. */
import { expect, keepScreenshot, openPanel, row, test } from './fixtures';

/** WCAG relative luminance of a computed `rgb(a)` colour. */
function luminance(css: string): number {
  const [r, g, b] = (css.match(/[\d.]+/g) ?? ['0', '0', '0']).slice(0, 3).map(Number);
  const channel = (v: number) => {
    const c = v / 255;
    return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
  };
  return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b);
}

test('dark theme: the panel renders with readable colours', async ({ api, jlab }, testInfo) => {
  await api.clear();
  await api.install(['bfdemo==1.0']);
  await jlab.evaluate(() =>
    (window as any).jupyterapp.commands.execute('apputils:change-theme', { theme: 'JupyterLab Dark' })
  );
  await expect(jlab.locator('body')).toHaveAttribute('data-jp-theme-light', 'false');
  await expect(jlab.locator('body')).toHaveAttribute('data-jp-theme-name', 'JupyterLab Dark');

  const panel = await openPanel(jlab);
  const saved = row(panel, 'bfdemo');
  await expect(saved).toBeVisible();
  await keepScreenshot(jlab, testInfo, 'dark-lab');
  await keepScreenshot(panel, testInfo, 'dark-panel');

  const colours = await saved.evaluate(el => {
    // The text's colour, and the first opaque background at or above it.
    const text = getComputedStyle(el).color;
    let node: Element | null = el;
    let background = 'rgba(0, 0, 0, 0)';
    while (node) {
      const bg = getComputedStyle(node).backgroundColor;
      if (bg && !/rgba\(.*, 0\)$/.test(bg) && bg !== 'transparent') {
        background = bg;
        break;
      }
      node = node.parentElement;
    }
    return { text, background };
  });
  testInfo.annotations.push({ type: 'colours', description: JSON.stringify(colours) });
  expect(colours.text).not.toBe(colours.background);
  const [light, dark] = [luminance(colours.text), luminance(colours.background)].sort((a, b) => b - a);
  const contrast = (light + 0.05) / (dark + 0.05);
  expect(contrast, `contrast of ${colours.text} on ${colours.background}`).toBeGreaterThanOrEqual(3);
  // The theme's background, not a light one the panel brought along.
  expect(luminance(colours.background), `background ${colours.background}`).toBeLessThan(0.2);
});
