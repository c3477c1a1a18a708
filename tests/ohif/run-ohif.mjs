// Drive the OHIF viewer served by a running dicomweb-proxy in headless Chromium and report what
// it showed. Called by tests/test_ohif.py, which makes the assertions:
//
//   node run-ohif.mjs SPEC.json REPORT.json
//
// SPEC: {viewerUrl, dicomwebUrl, chromium, artifacts, timeoutMs, studyList: bool,
//        variants: [{name, viewerUrl?, dataSource: {...OHIF data source configuration overrides},
//                    views: [{label, study, steps: [{name, index?, series?, seriesDescription?,
//                                                    thumbnail?}]}]}]}
// REPORT: {studyList: {rows, screenshot}, views: [{variant, label, steps: [{name, overlay,
//          canvas: {png, width, height, mean, std}, screenshot}], error}], requests, failures,
//          console, pageErrors, seconds}
// Only facts are gathered here: rendered canvas pixels (saved as PNG), the viewport overlay
// text, DICOMweb requests and their answers, console messages. No decisions.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';

const [specPath, reportPath] = process.argv.slice(2);
if (!specPath || !reportPath) {
  console.error('usage: node run-ohif.mjs SPEC.json REPORT.json');
  process.exit(2);
}
const spec = JSON.parse(fs.readFileSync(specPath, 'utf8'));
const timeout = spec.timeoutMs ?? 60000;
const started = Date.now();
const report = {
  studyList: null,
  views: [],
  requests: [],
  failures: [],
  console: [],
  pageErrors: [],
  pages: {}, // variant -> the viewer page's URL
  seconds: 0,
};
fs.mkdirSync(spec.artifacts, { recursive: true });

// Runs in every page before OHIF: a returning user (OHIF's onboarding tour and "investigational
// use" notice already seen), and a probe of the viewport's canvas (the image only: overlays are
// DOM on top): luminance mean, standard deviation and a digest of sampled pixels.
function prepareBrowser() {
  try {
    localStorage.setItem('shownTours', JSON.stringify(['basicViewerTour']));
    localStorage.setItem('investigationalUseDialog', JSON.stringify({ expiryDate: '2999-01-01' }));
  } catch {
    // about:blank has no storage
  }
  let probe;
  window.__viewportCanvasStats = () => {
    const canvas = document.querySelector('.cornerstone-canvas');
    if (!canvas || !canvas.width) return null;
    const { width, height } = canvas;
    // Read a copy: reading the viewer's own canvas repeatedly makes Chromium warn.
    probe ??= document.createElement('canvas');
    probe.width = width;
    probe.height = height;
    const context = probe.getContext('2d', { willReadFrequently: true });
    context.drawImage(canvas, 0, 0);
    const data = context.getImageData(0, 0, width, height).data;
    let n = 0;
    let sum = 0;
    let squares = 0;
    let hash = 0;
    for (let y = 0; y < height; y += 3) {
      for (let x = 0; x < width; x += 3) {
        const i = (y * width + x) * 4;
        const value = (data[i] + data[i + 1] + data[i + 2]) / 3;
        n += 1;
        sum += value;
        squares += value * value;
        hash = (hash * 31 + data[i] + 7 * data[i + 1] + 13 * data[i + 2]) | 0;
      }
    }
    const mean = sum / n;
    return { width, height, mean, std: Math.sqrt(Math.max(0, squares / n - mean * mean)), hash };
  };
}

function overrideDataSource(config, overrides) {
  Object.assign(config.dataSources[0].configuration, overrides);
}

function watch(page, variant) {
  const dicomweb = new URL(spec.dicomwebUrl).pathname;
  page.on('console', (message) => {
    const type = message.type();
    if (type === 'error' || type === 'warning') {
      report.console.push({ variant, type, text: message.text().slice(0, 2000) });
    }
  });
  page.on('pageerror', (error) => report.pageErrors.push({ variant, text: String(error) }));
  page.on('requestfailed', (request) => {
    const failure = request.failure()?.errorText ?? 'failed';
    // A request the page itself abandoned (navigating away, a cancelled prefetch) is no failure.
    if (failure !== 'net::ERR_ABORTED') {
      report.failures.push({ variant, url: request.url(), status: 0, error: failure });
    }
  });
  page.on('response', (response) => {
    const request = response.request();
    const url = response.url();
    if (response.status() >= 400) {
      report.failures.push({ variant, url, status: response.status(), method: request.method() });
    }
    if (new URL(url).pathname.startsWith(dicomweb)) {
      report.requests.push({
        variant,
        method: request.method(),
        url,
        status: response.status(),
        accept: request.headers().accept ?? '',
        contentType: response.headers()['content-type'] ?? '',
      });
    }
  });
}

async function newPage(context, variant) {
  const page = await context.newPage();
  watch(page, variant.name);
  if (variant.dataSource && Object.keys(variant.dataSource).length) {
    // The server's generated app-config.js, with this variant's data source options on top.
    await page.route('**/viewer/app-config.js', async (route) => {
      const response = await route.fetch();
      const body = `${await response.text()}\n(${overrideDataSource})(window.config, ${JSON.stringify(
        variant.dataSource,
      )});\n`;
      await route.fulfill({ response, body });
    });
  }
  return page;
}

function artifact(name) {
  return path.join(spec.artifacts, name.replace(/[^A-Za-z0-9_.-]+/g, '-'));
}

async function readStudyList(page) {
  await page.goto(`${spec.viewerUrl}/`, { waitUntil: 'load', timeout });
  await page.waitForSelector('table tbody tr td', { timeout });
  // The list is complete when the pager's "1-N of M" settles.
  await page.waitForFunction(
    () => /\d+-\d+ of \d+/.test(document.body.innerText),
    null,
    { timeout },
  );
  const rows = [];
  for (let pageNumber = 1; pageNumber <= 20; pageNumber++) {
    const cells = await page.$$eval('table tbody tr', (trs) =>
      trs
        .filter((tr) => !tr.querySelector('input')) // the filter row
        .map((tr) => [...tr.querySelectorAll('td')].map((td) => td.innerText.trim())),
    );
    rows.push(...cells.filter((row) => row.length > 1));
    if (pageNumber === 1) {
      await page.screenshot({ path: artifact('study-list.png') });
    }
    const next = page.locator('button[aria-label="Next page"]');
    if (!(await next.count()) || (await next.isDisabled())) break;
    const before = JSON.stringify(cells);
    await next.click();
    await page.waitForFunction(
      (previous) =>
        JSON.stringify(
          [...document.querySelectorAll('table tbody tr')].map((tr) =>
            [...tr.querySelectorAll('td')].map((td) => td.innerText.trim()),
          ),
        ) !== previous,
      before,
      { timeout },
    );
  }
  const pager = await page.evaluate(() => document.body.innerText.match(/\d+-\d+ of \d+/)?.[0]);
  return { rows, pager, screenshot: artifact('study-list.png') };
}

async function canvasStats(page) {
  return page.evaluate(() => window.__viewportCanvasStats());
}

async function overlayText(page) {
  return page.evaluate(
    () =>
      document.querySelector('[data-cy="viewport-overlay-bottom-right"]')?.innerText?.trim() ?? '',
  );
}

// Wait until the canvas shows something (not flat) and stops changing, and the overlay says
// which image it is (optionally a given index).
async function settled(page, wantedIndex) {
  const deadline = Date.now() + timeout;
  let previous = null;
  let stableSince = 0;
  while (Date.now() < deadline) {
    const overlay = await overlayText(page);
    const match = overlay.match(/(\d+)\/(\d+)/); // "I:7 (3/20)", or "1/1" for one image
    const stats = await canvasStats(page);
    const indexOk = match && (!wantedIndex || Number(match[1]) === wantedIndex);
    if (indexOk && stats && stats.std > 1) {
      if (previous && previous.hash === stats.hash) {
        if (Date.now() - stableSince > 700) return { overlay, stats };
      } else {
        stableSince = Date.now();
      }
    }
    previous = stats;
    await page.waitForTimeout(150);
  }
  const overlay = await overlayText(page);
  return { overlay, stats: await canvasStats(page), timedOut: true };
}

async function saveCanvas(page, name) {
  const dataUrl = await page.evaluate(() =>
    document.querySelector('.cornerstone-canvas')?.toDataURL('image/png'),
  );
  if (!dataUrl) return null;
  const file = artifact(`${name}.canvas.png`);
  fs.writeFileSync(file, Buffer.from(dataUrl.split(',')[1], 'base64'));
  return file;
}

async function scrollTo(page, index) {
  const overlay = await overlayText(page);
  const current = Number(overlay.match(/(\d+)\/(\d+)/)?.[1] ?? 1);
  const box = await page.locator('.viewport-element').first().boundingBox();
  await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
  const key = index > current ? 'ArrowDown' : 'ArrowUp';
  for (let i = 0; i < Math.abs(index - current); i++) {
    await page.keyboard.press(key);
    await page.waitForTimeout(40);
  }
}

async function openSeries(page, seriesNumber) {
  // Double-clicking a series thumbnail loads it into the active viewport.
  await page
    .locator(`[data-cy="study-browser-thumbnail"][data-series="${seriesNumber}"]`)
    .first()
    .dblclick();
}

async function runView(context, variant, view) {
  const record = { variant: variant.name, label: view.label, study: view.study, steps: [] };
  report.views.push(record);
  const page = await newPage(context, variant);
  try {
    const viewerUrl = variant.viewerUrl ?? spec.viewerUrl;
    const url = `${viewerUrl}/viewer?StudyInstanceUIDs=${encodeURIComponent(view.study)}`;
    await page.goto(url, { waitUntil: 'load', timeout });
    report.pages[variant.name] = page.url();
    await page.waitForSelector('.cornerstone-canvas', { timeout });
    record.thumbnails = [];
    for (const step of view.steps) {
      if (step.series !== undefined) {
        await openSeries(page, step.series);
        await page.waitForFunction(
          (description) =>
            (
              document.querySelector('[data-cy="viewport-overlay-top-left"]')?.innerText ?? ''
            ).includes(description),
          step.seriesDescription,
          { timeout },
        );
      }
      if (step.thumbnail !== undefined) {
        // Another display set of the same series (e.g. the second multi-frame instance).
        const before = (await canvasStats(page))?.hash;
        await page.locator('[data-cy="study-browser-thumbnail"]').nth(step.thumbnail).dblclick();
        await page.waitForFunction(
          (hash) => window.__viewportCanvasStats()?.hash !== hash,
          before,
          { timeout, polling: 250 },
        );
      }
      if (step.index) await scrollTo(page, step.index);
      const state = await settled(page, step.index);
      const name = `${variant.name}-${view.label}-${step.name}`;
      const screenshot = artifact(`${name}.png`);
      await page.screenshot({ path: screenshot });
      record.steps.push({
        name: step.name,
        overlay: state.overlay,
        topLeft: await page.evaluate(
          () => document.querySelector('[data-cy="viewport-overlay-top-left"]')?.innerText ?? '',
        ),
        timedOut: Boolean(state.timedOut),
        canvas: { ...state.stats, png: await saveCanvas(page, name) },
        screenshot,
      });
    }
    record.thumbnails = await page.$$eval('[data-cy^="study-browser-thumbnail"]', (items) =>
      items.map((item) => item.innerText.replace(/\s+/g, ' ').trim()),
    );
  } catch (error) {
    record.error = String(error?.stack ?? error);
    await page.screenshot({ path: artifact(`${variant.name}-${view.label}-error.png`) });
  } finally {
    await page.close();
  }
}

const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'ohif-chromium-'));
let context;
try {
  context = await chromium.launchPersistentContext(profile, {
    executablePath: spec.chromium,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
    viewport: { width: 1280, height: 900 },
    timeout,
  });
  await context.addInitScript(prepareBrowser);
  if (spec.studyList) {
    const page = await newPage(context, { name: 'default' });
    try {
      report.studyList = await readStudyList(page);
    } catch (error) {
      report.studyList = { error: String(error?.stack ?? error) };
      await page.screenshot({ path: artifact('study-list-error.png') });
    } finally {
      await page.close();
    }
  }
  for (const variant of spec.variants) {
    for (const view of variant.views) {
      await runView(context, variant, view);
    }
  }
} finally {
  await context?.close();
  fs.rmSync(profile, { recursive: true, force: true });
  report.seconds = (Date.now() - started) / 1000;
  fs.writeFileSync(reportPath, JSON.stringify(report, null, 1));
}
