// Draws one small SVG per scenario: latency distributions as percentile lines (p0–p100), or bars.
// Latency charts whose paths differ by more than 10× (docker exec against nsenter) use a
// logarithmic axis, so the fast paths are not flattened against the bottom; their legend goes
// below the plot, one line per path.
import type { ScenarioResult } from './context.js';
import { percentile } from './stats.js';

const WIDTH = 640;
const HEIGHT = 280;
const MARGIN = { left: 70, right: 20, top: 36, bottom: 48 };
const COLORS = ['#2f6fdd', '#e07b39', '#3a9e5c', '#9b59b6', '#c0392b', '#16a2b8', '#7f8c8d', '#b8860b'];

const escape = (text: string) => text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

function frame(title: string, body: string, height = HEIGHT): string {
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="#fff"/>
<text x="${WIDTH / 2}" y="20" text-anchor="middle" font-size="14" font-weight="bold">${escape(title)}</text>
${body}
</svg>
`;
}

/** Round values for a logarithmic axis between `low` and `high`: 1, 2, 5, 10, 20, 50, … */
function logTicks(low: number, high: number): number[] {
  const ticks: number[] = [];
  for (let decade = 10 ** Math.floor(Math.log10(low)); decade <= high; decade *= 10) {
    for (const step of [1, 2, 5]) if (decade * step >= low && decade * step <= high) ticks.push(decade * step);
  }
  return ticks;
}

const LEGEND_LINE = 16;

function latencyChart(result: ScenarioResult): string {
  const plotW = WIDTH - MARGIN.left - MARGIN.right;
  const plotH = HEIGHT - MARGIN.top - MARGIN.bottom;
  const quantiles = Array.from({ length: 101 }, (_, i) => i);
  const curves = result.chart.series.map((s) => quantiles.map((q) => percentile(s.values, Math.max(q, 1))));
  const all = curves.flat().filter((v) => v > 0);
  const max = all.length > 0 ? Math.max(...all) * 1.05 : 1;
  const medians = result.chart.series.map((s) => percentile(s.values, 50)).filter((v) => v > 0);
  const logarithmic = medians.length > 1 && Math.max(...medians) / Math.min(...medians) > 10;
  const min = logarithmic ? Math.min(...all) / 1.05 : 0;
  const scale = (v: number) => (logarithmic ? (Math.log10(Math.max(v, min)) - Math.log10(min)) / (Math.log10(max) - Math.log10(min)) : v / max);
  const x = (q: number) => MARGIN.left + (q / 100) * plotW;
  const y = (v: number) => MARGIN.top + plotH - scale(v) * plotH;
  let body = `<line x1="${MARGIN.left}" y1="${MARGIN.top + plotH}" x2="${MARGIN.left + plotW}" y2="${MARGIN.top + plotH}" stroke="#444"/>
<line x1="${MARGIN.left}" y1="${MARGIN.top}" x2="${MARGIN.left}" y2="${MARGIN.top + plotH}" stroke="#444"/>`;
  const ticks = logarithmic ? logTicks(min, max) : [0, 0.25, 0.5, 0.75, 1].map((t) => max * t);
  for (const tick of ticks) {
    body += `\n<text x="${MARGIN.left - 6}" y="${y(tick) + 4}" text-anchor="end">${logarithmic ? String(tick) : tick.toFixed(1)}</text>`;
  }
  for (const q of [0, 50, 90, 100]) body += `\n<text x="${x(q)}" y="${MARGIN.top + plotH + 16}" text-anchor="middle">p${q}</text>`;
  body += `\n<text x="${MARGIN.left + plotW / 2}" y="${HEIGHT - 8}" text-anchor="middle">percentile of runs</text>`;
  const unit = `${result.chart.unit}${logarithmic ? ', log scale' : ''}`;
  body += `\n<text x="16" y="${MARGIN.top + plotH / 2}" transform="rotate(-90 16 ${MARGIN.top + plotH / 2})" text-anchor="middle">${escape(unit)}</text>`;
  curves.forEach((curve, i) => {
    const points = curve.map((v, q) => `${x(q).toFixed(1)},${y(v).toFixed(1)}`).join(' ');
    body += `\n<polyline fill="none" stroke="${COLORS[i % COLORS.length]}" stroke-width="2" points="${points}"/>`;
    body += `\n<text x="${MARGIN.left}" y="${HEIGHT + 6 + i * LEGEND_LINE}" fill="${COLORS[i % COLORS.length]}">${escape(result.chart.series[i]!.label)} (p50 ${percentile(result.chart.series[i]!.values, 50).toFixed(2)} ${escape(result.chart.unit)})</text>`;
  });
  return frame(result.title, body, HEIGHT + 10 + curves.length * LEGEND_LINE);
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
