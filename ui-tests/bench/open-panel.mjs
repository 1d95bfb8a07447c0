/**
 * The browser half of bench/panel.py: opens the Packages panel in each given lab, in turns
 * that alternate which goes first, and prints the milliseconds from the open command until
 * the installed list holds every requirement (its height is one line per requirement).
 *
 *   node ui-tests/bench/open-panel.mjs < {"labs": [{"url", "token", "count"}, ...], "repeat": N}
 */
import { chromium } from '@playwright/test';

const input = JSON.parse(await new Promise(resolve => {
  let text = '';
  process.stdin.on('data', chunk => (text += chunk));
  process.stdin.on('end', () => resolve(text));
}));

const browser = await chromium.launch({
  executablePath: process.env.BIFROST_CHROMIUM || '/usr/bin/chromium'
});
const page = await browser.newPage({ viewport: { width: 1440, height: 900 } });

async function openOnce(lab) {
  await page.goto(`${lab.url}lab?reset&token=${lab.token}`);
  await page.waitForFunction(() => !!window.jupyterapp, undefined, { timeout: 60_000 });
  await page.evaluate(() => window.jupyterapp.restored);
  return page.evaluate(async count => {
    const start = performance.now();
    await window.jupyterapp.commands.execute('bifrost:open-packages');
    const want = `${count * 24}px`;
    await new Promise(resolve => {
      const check = () => {
        const list = document.querySelector('#bifrost-packages .jp-bifrost-requirements');
        if (list && list.style.height === want && list.querySelector('[data-requirement]')) {
          resolve();
        } else {
          requestAnimationFrame(check);
        }
      };
      check();
    });
    // The frame that shows it.
    await new Promise(resolve => requestAnimationFrame(() => resolve()));
    return performance.now() - start;
  }, lab.count);
}

const samples = input.labs.map(() => []);
// One unmeasured round: the bundle into the browser's cache, the servers' first reads.
for (const lab of input.labs) await openOnce(lab);
for (let i = 0; i < input.repeat; i++) {
  const order = input.labs.map((_, j) => j);
  if (i % 2) order.reverse();
  for (const j of order) samples[j].push((await openOnce(input.labs[j])) / 1000);
}
await browser.close();
process.stdout.write(JSON.stringify(samples) + '\n');
