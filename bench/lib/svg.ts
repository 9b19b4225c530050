// Draws one small SVG per scenario: latency distributions as percentile lines (p0–p100), or bars.
import type { ScenarioResult } from './context.js';
import { percentile } from './stats.js';

const WIDTH = 640;
const HEIGHT = 280;
const MARGIN = { left: 70, right: 20, top: 36, bottom: 48 };
const COLORS = ['#2f6fdd', '#e07b39', '#3a9e5c', '#9b59b6'];

const escape = (text: string) => text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

function frame(title: string, body: string): string {
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${HEIGHT}" viewBox="0 0 ${WIDTH} ${HEIGHT}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="#fff"/>
<text x="${WIDTH / 2}" y="20" text-anchor="middle" font-size="14" font-weight="bold">${escape(title)}</text>
${body}
</svg>
`;
}

function latencyChart(result: ScenarioResult): string {
  const plotW = WIDTH - MARGIN.left - MARGIN.right;
  const plotH = HEIGHT - MARGIN.top - MARGIN.bottom;
  const quantiles = Array.from({ length: 101 }, (_, i) => i);
  const curves = result.chart.series.map((s) => quantiles.map((q) => percentile(s.values, Math.max(q, 1))));
  const max = Math.max(...curves.flat()) * 1.05 || 1;
  const x = (q: number) => MARGIN.left + (q / 100) * plotW;
  const y = (v: number) => MARGIN.top + plotH - (v / max) * plotH;
  let body = `<line x1="${MARGIN.left}" y1="${MARGIN.top + plotH}" x2="${MARGIN.left + plotW}" y2="${MARGIN.top + plotH}" stroke="#444"/>
<line x1="${MARGIN.left}" y1="${MARGIN.top}" x2="${MARGIN.left}" y2="${MARGIN.top + plotH}" stroke="#444"/>`;
  for (const tick of [0, 0.25, 0.5, 0.75, 1]) {
    body += `\n<text x="${MARGIN.left - 6}" y="${y(max * tick) + 4}" text-anchor="end">${(max * tick).toFixed(1)}</text>`;
  }
  for (const q of [0, 50, 90, 99, 100]) body += `\n<text x="${x(q)}" y="${MARGIN.top + plotH + 16}" text-anchor="middle">p${q}</text>`;
  body += `\n<text x="${MARGIN.left + plotW / 2}" y="${HEIGHT - 8}" text-anchor="middle">percentile of runs</text>`;
  body += `\n<text x="16" y="${MARGIN.top + plotH / 2}" transform="rotate(-90 16 ${MARGIN.top + plotH / 2})" text-anchor="middle">${escape(result.chart.unit)}</text>`;
  curves.forEach((curve, i) => {
    const points = curve.map((v, q) => `${x(q).toFixed(1)},${y(v).toFixed(1)}`).join(' ');
    body += `\n<polyline fill="none" stroke="${COLORS[i % COLORS.length]}" stroke-width="2" points="${points}"/>`;
    body += `\n<text x="${MARGIN.left + 10}" y="${MARGIN.top + 14 + i * 16}" fill="${COLORS[i % COLORS.length]}">${escape(result.chart.series[i]!.label)} (p50 ${percentile(result.chart.series[i]!.values, 50).toFixed(2)} ${escape(result.chart.unit)})</text>`;
  });
  return frame(result.title, body);
}

function barChart(result: ScenarioResult): string {
  const plotW = WIDTH - MARGIN.left - MARGIN.right;
  const plotH = HEIGHT - MARGIN.top - MARGIN.bottom;
  const values = result.chart.series.map((s) => s.values[0] ?? 0);
  const max = Math.max(...values) * 1.1 || 1;
  const slot = plotW / values.length;
  let body = `<line x1="${MARGIN.left}" y1="${MARGIN.top + plotH}" x2="${MARGIN.left + plotW}" y2="${MARGIN.top + plotH}" stroke="#444"/>`;
  values.forEach((value, i) => {
    const h = (value / max) * plotH;
    const bx = MARGIN.left + i * slot + slot * 0.15;
    body += `\n<rect x="${bx.toFixed(1)}" y="${(MARGIN.top + plotH - h).toFixed(1)}" width="${(slot * 0.7).toFixed(1)}" height="${h.toFixed(1)}" fill="${COLORS[i % COLORS.length]}"/>`;
    body += `\n<text x="${(bx + slot * 0.35).toFixed(1)}" y="${(MARGIN.top + plotH - h - 4).toFixed(1)}" text-anchor="middle">${value.toFixed(1)} ${escape(result.chart.unit)}</text>`;
    body += `\n<text x="${(bx + slot * 0.35).toFixed(1)}" y="${MARGIN.top + plotH + 16}" text-anchor="middle">${escape(result.chart.series[i]!.label)}</text>`;
  });
  return frame(result.title, body);
}

export function chartFor(result: ScenarioResult): string {
  return result.chart.kind === 'latency' ? latencyChart(result) : barChart(result);
}
