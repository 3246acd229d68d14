// Headless-browser check of an hcs HTML report (a run's results/report.html).
//
//   node tests/browser/report.test.mjs <path/to/report.html> [--screenshot out.png]
//
// Needs playwright-core (npm ci --prefix tests/browser) and a chromium binary: $CHROMIUM or
// /usr/bin/chromium (scripts/install-browser.sh installs both). Prints `ok - <check>` or
// `FAIL - <check>: why` per check; exits 1 when any check fails, 2 on a usage or launch error.
import { chromium } from 'playwright-core';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const args = process.argv.slice(2);
let report = null, screenshot = null;
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--screenshot') screenshot = args[++i];
  else if (!report) report = args[i];
  else { console.error(`unexpected argument ${args[i]}`); process.exit(2); }
}
if (!report || (args.includes('--screenshot') && !screenshot)) {
  console.error('usage: node tests/browser/report.test.mjs <path/to/report.html> [--screenshot out.png]');
  process.exit(2);
}
if (!existsSync(report)) { console.error(`no such file: ${report}`); process.exit(2); }

const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
let browser;
try {
  browser = await chromium.launch({ executablePath, args: ['--no-sandbox'], headless: true });
} catch (e) {
  console.error(`cannot launch chromium at ${executablePath}: ${e.message}`);
  process.exit(2);
}

let failed = 0;
const ok = name => console.log(`ok - ${name}`);
const fail = (name, why) => { failed++; console.log(`FAIL - ${name}: ${why}`); };
async function check(name, fn) {
  try {
    const why = await fn();
    if (why) fail(name, why); else ok(name);
  } catch (e) {
    fail(name, String(e && e.message || e).split('\n')[0]);
  }
}

const problems = [];   // console errors / warnings and page errors
const requests = [];   // every URL the page asked for
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  page.setDefaultTimeout(5000);
  page.on('console', m => { if (m.type() === 'error' || m.type() === 'warning') problems.push(`console.${m.type()}: ${m.text()}`); });
  page.on('pageerror', e => problems.push(`page error: ${e.message}`));
  page.on('request', r => requests.push(r.url()));
  await page.goto(pathToFileURL(resolve(report)).href, { waitUntil: 'load' });

  await check('renders without console errors, warnings or page errors', async () => {
    if (problems.length) return problems.join(' | ');
  });
  const loadProblems = problems.length;

  const data = await page.evaluate(() => {
    try { return JSON.parse(document.getElementById('hcs-data').textContent); } catch (e) { return null; }
  });
  const run = (data && typeof data === 'object' && data.run) || {};
  const plate = run.plate || {};
  const wells = (Array.isArray(run.wells) ? run.wells : []).filter(w => w && typeof w.well === 'string');
  const first = wells.length ? wells[0].well : null;
  const cellSel = w => `#plate-map .well-cell[data-well="${w}"]`;

  await check('plate map has rows × columns cells and one cell per run well', async () => {
    const n = await page.locator('#plate-map .well-cell').count();
    if (Number.isInteger(plate.rows) && Number.isInteger(plate.columns) && n !== plate.rows * plate.columns)
      return `${n} cells, expected ${plate.rows} × ${plate.columns} = ${plate.rows * plate.columns}`;
    const cells = await page.$$eval('#plate-map .well-cell', cs => cs.map(c => [c.getAttribute('data-well'), c.classList.contains('empty')]));
    for (const w of wells) {
      const mine = cells.filter(([name]) => name === w.well);
      if (mine.length !== 1) return `${mine.length} cells for run well ${w.well}`;
      if (mine[0][1]) return `run well ${w.well} is drawn as empty`;
    }
    const empty = await page.locator('#plate-map .well-cell.empty').count();
    if (Number.isInteger(plate.rows) && Number.isInteger(plate.columns) && empty !== n - new Set(wells.map(w => w.well)).size)
      return `${empty} empty cells of ${n} for ${wells.length} run wells`;
  });

  await check('the header names the workers and the wells the run took at once', async () => {
    const pairs = await page.$$eval('dl.kv dt', ds => ds.map(d => [d.textContent.trim(), (d.nextElementSibling || {}).textContent || '']));
    const shown = pairs.find(([k]) => k === 'Workers');
    if (!shown) return 'no Workers entry in the header';
    if (!new RegExp(`^${run.workers}\\b`).test(shown[1].trim())) return `Workers shows "${shown[1]}", run.json says ${run.workers}`;
    if (Number.isInteger(run.wells_at_once)) {
      const want = `${run.wells_at_once} ${run.wells_at_once === 1 ? 'well' : 'wells'} at once`;
      if (!shown[1].includes(want)) return `Workers shows "${shown[1]}", expected it to say "${want}"`;
    }
  });

  await check('clicking the first run well selects it', async () => {
    if (!first) return; // nothing to click in a run without wells
    await page.click(cellSel(first));
    if (await page.locator('#well-details-title').count() !== 1) return 'no #well-details-title after the click';
    const title = (await page.locator('#well-details-title').textContent()).trim();
    if (title !== first) return `#well-details-title shows "${title}", expected "${first}"`;
    const cls = await page.getAttribute(cellSel(first), 'class');
    if (!/\bselected\b/.test(cls || '')) return `cell class is "${cls}"`;
    if (await page.locator('#plate-map .well-cell.selected').count() !== 1) return 'more than one selected cell';
  });

  await check('every map metric colours the map, and status and time differ', async () => {
    const metrics = await page.$$eval('#map-metric option', os => os.map(o => o.value));
    for (const m of ['status', 'cells', 'stitching', 'time', 'focus', 'saturation'])
      if (!metrics.includes(m)) return `#map-metric has no option ${m}`;
    const fills = async () => page.$$eval('#plate-map .well-cell', cs => cs.map(c => {
      const st = getComputedStyle(c);
      return `${c.getAttribute('fill')}|${st.fill}|${st.backgroundColor}`;
    }));
    const seen = {};
    for (const m of metrics) {
      const before = problems.length;
      await page.selectOption('#map-metric', m);
      seen[m] = await fills();
      if (problems.length > before) return `metric ${m}: ${problems.slice(before).join('; ')}`;
    }
    await page.selectOption('#map-metric', 'status');
    if (wells.length && seen.status.every((f, i) => f === seen.time[i])) return 'no cell changed colour between status and time';
  });

  await check('wells table sorts ascending then descending', async () => {
    const rows = await page.locator('#wells-table tr[data-well]').count();
    if (rows !== wells.length) return `${rows} table rows for ${wells.length} wells`;
    const heads = await page.$$eval('#wells-table th', hs => hs.map(h => h.textContent.trim()));
    const col = heads.findIndex(h => /^seconds/.test(h));
    if (col < 0) return `no "seconds" column in ${JSON.stringify(heads)}`;
    const th = page.locator('#wells-table th').nth(col);
    const values = () => page.$$eval('#wells-table tbody tr[data-well]', (trs, c) =>
      trs.map(tr => tr.children[c].getAttribute('data-v')).filter(v => v !== null && v !== '').map(Number), col);
    await th.click();
    const asc = await values();
    await th.click();
    const desc = await values();
    if (asc.some((v, i) => i && asc[i - 1] > v)) return `not ascending: ${asc}`;
    if (desc.some((v, i) => i && desc[i - 1] < v)) return `not descending: ${desc}`;
    const distinct = a => a.filter((v, i) => !i || a[i - 1] !== v);
    if (JSON.stringify(distinct(asc)) !== JSON.stringify(distinct(desc).reverse())) return `asc ${asc} vs desc ${desc}`;
    if (asc.length && (await page.locator('#wells-table tbody tr[data-well]').first().getAttribute('data-well')) === null) return 'rows lost';
  });

  await check('timeline has one bar group per well that ran', async () => {
    const groups = await page.$$eval('#timeline [data-well]', gs => gs.map(g => g.getAttribute('data-well')));
    if (new Set(groups).size !== groups.length) return `duplicate groups: ${groups}`;
    const done = wells.filter(w => w.status === 'done' && typeof w.start_s === 'number' && typeof w.seconds === 'number');
    for (const w of done) if (!groups.includes(w.well)) return `no timeline bar for done well ${w.well}`;
    const known = new Set(wells.map(w => w.well));
    const stray = groups.filter(g => !known.has(g));
    if (stray.length) return `bars for wells not in the run: ${stray}`;
    const notRan = wells.filter(w => ['resumed', 'not_run', 'missing'].includes(w.status)).map(w => w.well);
    const extra = groups.filter(g => notRan.includes(g));
    if (extra.length) return `bars for wells that did not run: ${extra}`;
  });

  await check('a step run one part of the well at a time has a timeline bar per part', async () => {
    const parted = wells.flatMap(w => (w.steps || []).filter(x => Array.isArray(x.parts) && x.parts.length)
      .map(x => ({ well: w.well, index: x.index, parts: x.parts.length })));
    for (const { well, index, parts } of parted) {
      const titles = await page.$$eval(`#timeline [data-well="${well}"] rect title`, ts => ts.map(t => t.textContent));
      const bars = titles.filter(t => t.includes(`· step ${index} `) && t.includes(` of ${parts})`));
      if (bars.length !== parts) return `${well} step ${index}: ${bars.length} bars for ${parts} parts`;
    }
  });

  if (screenshot) {
    if (first) await page.click(cellSel(first)).catch(() => {});
    await page.screenshot({ path: screenshot, fullPage: true });
  }

  await check('no network requests beyond file: and data: URLs', async () => {
    const net = requests.filter(u => !/^(file|data|about|blob):/i.test(u));
    if (net.length) return net.join(', ');
  });

  await check('interactions raise no console errors, warnings or page errors', async () => {
    if (problems.length > loadProblems) return problems.slice(loadProblems).join(' | ');
  });
} finally {
  await browser.close();
}
if (screenshot) console.log(`# screenshot: ${screenshot}`);
console.log(failed ? `# ${failed} check(s) failed` : '# all checks passed');
process.exit(failed ? 1 : 0);
