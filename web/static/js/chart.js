// Line charts drawn as SVG: several series over a shared x axis, nice ticks, a cursor
// that shows every series' value at the nearest x (by pointer, or by keyboard: focus
// the chart and use the arrow keys, Home and End), and a legend. Long series are
// reduced to the first, lowest, highest and last point of each pixel column, so a
// 100,000-episode curve costs what a 1,000-pixel one does and keeps its spikes.

import { fmt, h, s, uid } from './dom.js';

const MARGIN = { top: 12, right: 16, bottom: 40, left: 60 };
const TOOLTIP_LINE = 16;

export function niceTicks(lo, hi, count = 5) {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / count;
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * power).find((v) => v >= raw) ?? raw;
  const ticks = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) {
    ticks.push(Math.abs(v) < step * 1e-9 ? 0 : v);
  }
  return ticks;
}

function extent(series, key) {
  let lo = Infinity;
  let hi = -Infinity;
  for (const one of series) {
    for (const v of one[key]) {
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
  }
  return [lo, hi];
}

// Index of the x nearest to `x` in the ascending array `xs`.
export function nearest(xs, x) {
  let lo = 0;
  let hi = xs.length - 1;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (xs[mid] < x) lo = mid;
    else hi = mid;
  }
  return Math.abs(xs[lo] - x) <= Math.abs(xs[hi] - x) ? lo : hi;
}

// The SVG path of a series, at most four points per pixel column.
function pathOf(xs, ys, sx, sy) {
  const parts = [];
  let column = null;
  let bucket = null;
  const flush = () => {
    if (!bucket) return;
    const points = [bucket.first, bucket.min, bucket.max, bucket.last];
    points.sort((a, b) => a.i - b.i);
    let prev = -1;
    for (const p of points) {
      if (p.i === prev) continue;
      prev = p.i;
      parts.push(`${parts.length ? 'L' : 'M'}${sx(xs[p.i]).toFixed(1)} ${sy(ys[p.i]).toFixed(1)}`);
    }
  };
  for (let i = 0; i < xs.length; i += 1) {
    const px = Math.round(sx(xs[i]));
    const point = { i, y: ys[i] };
    if (px !== column) {
      flush();
      column = px;
      bucket = { first: point, min: point, max: point, last: point };
    } else {
      if (point.y < bucket.min.y) bucket.min = point;
      if (point.y > bucket.max.y) bucket.max = point;
      bucket.last = point;
    }
  }
  flush();
  return parts.join('');
}

export class LineChart {
  // series: [{label, xs, ys, kind: 'raw' | 'line', color: 0..7}], xs ascending.
  constructor(host, { label, xLabel = 'x', yLabel = 'y', height = 280, empty = 'No data yet.' }) {
    this.label = label;
    this.xLabel = xLabel;
    this.yLabel = yLabel;
    this.baseHeight = height;
    this.emptyText = empty;
    this.series = [];
    this.cursorX = null;
    this.frame = 0;
    const readoutId = uid('chart-readout');
    this.svg = s('svg', {
      class: 'chart-svg',
      role: 'img',
      tabindex: '0',
      'aria-label': `${label}. Focus and use the arrow keys to read values.`,
      'aria-describedby': readoutId,
    });
    this.legend = h('ul', { class: 'chart-legend' });
    this.readout = h('p', { class: 'chart-readout', id: readoutId, 'aria-live': 'off' });
    this.root = h('figure', { class: 'chart' }, this.svg, this.legend, this.readout);
    host.append(this.root);
    this.svg.addEventListener('pointermove', (e) => this.onPointer(e));
    this.svg.addEventListener('pointerleave', () => this.moveCursor(null));
    this.svg.addEventListener('keydown', (e) => this.onKey(e));
    // Values read by keyboard are announced; live redraws of an unfocused chart are not.
    this.svg.addEventListener('focus', () => this.readout.setAttribute('aria-live', 'polite'));
    this.svg.addEventListener('blur', () => this.readout.setAttribute('aria-live', 'off'));
    this.resize = new ResizeObserver(() => this.schedule());
    this.resize.observe(this.root);
  }

  setSeries(series) {
    this.series = series;
    this.schedule();
  }

  // Redraw on the next frame; many updates in one frame cost one drawing.
  schedule() {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      this.render();
    });
  }

  destroy() {
    this.resize.disconnect();
    cancelAnimationFrame(this.frame);
  }

  get pointCount() {
    return this.series.reduce((n, one) => Math.max(n, one.xs.length), 0);
  }

  layout() {
    const width = Math.max(260, Math.floor(this.root.clientWidth || 600));
    const height = width < 500 ? Math.round(this.baseHeight * 0.8) : this.baseHeight;
    const filled = this.series.filter((one) => one.xs.length);
    let [x0, x1] = extent(filled, 'xs');
    let [y0, y1] = extent(filled, 'ys');
    if (x0 === x1) [x0, x1] = [x0 - 1, x1 + 1];
    if (y0 === y1) [y0, y1] = [y0 - 1, y1 + 1];
    const pad = (y1 - y0) * 0.05;
    [y0, y1] = [y0 - pad, y1 + pad];
    const innerW = width - MARGIN.left - MARGIN.right;
    const innerH = height - MARGIN.top - MARGIN.bottom;
    const sx = (x) => MARGIN.left + ((x - x0) / (x1 - x0)) * innerW;
    const sy = (y) => MARGIN.top + innerH - ((y - y0) / (y1 - y0)) * innerH;
    return { width, height, x0, x1, y0, y1, sx, sy, innerW, innerH, filled };
  }

  render() {
    const g = this.layout();
    this.geometry = g;
    this.svg.dataset.points = String(this.pointCount);
    this.svg.setAttribute('viewBox', `0 0 ${g.width} ${g.height}`);
    this.svg.setAttribute('width', g.width);
    this.svg.setAttribute('height', g.height);
    const nodes = [];
    if (!g.filled.length) {
      nodes.push(
        s('text', { x: g.width / 2, y: g.height / 2, class: 'chart-empty', 'text-anchor': 'middle' },
          this.emptyText),
      );
      this.svg.replaceChildren(...nodes);
      this.renderLegend();
      this.readout.textContent = this.emptyText;
      return;
    }
    nodes.push(...this.axes(g));
    for (const one of this.series) {
      if (!one.xs.length) continue;
      nodes.push(s('path', {
        d: pathOf(one.xs, one.ys, g.sx, g.sy),
        class: ['series', `series-${one.color ?? 0}`, one.kind === 'raw' ? 'raw' : 'line'],
      }));
    }
    this.cursorLayer = s('g', { class: 'chart-cursor' });
    nodes.push(this.cursorLayer);
    this.svg.replaceChildren(...nodes);
    this.renderLegend();
    this.drawCursor();
  }

  axes(g) {
    const nodes = [];
    const bottom = MARGIN.top + g.innerH;
    const xTickCount = Math.max(2, Math.floor(g.innerW / 90));
    for (const y of niceTicks(g.y0, g.y1, g.innerH > 180 ? 6 : 4)) {
      nodes.push(s('line', { x1: MARGIN.left, x2: g.width - MARGIN.right, y1: g.sy(y), y2: g.sy(y),
        class: 'grid' }));
      nodes.push(s('text', { x: MARGIN.left - 6, y: g.sy(y) + 4, 'text-anchor': 'end',
        class: 'tick' }, fmt(y)));
    }
    for (const x of niceTicks(g.x0, g.x1, xTickCount)) {
      nodes.push(s('line', { x1: g.sx(x), x2: g.sx(x), y1: bottom, y2: bottom + 5, class: 'axis' }));
      nodes.push(s('text', { x: g.sx(x), y: bottom + 18, 'text-anchor': 'middle', class: 'tick' },
        fmt(x)));
    }
    nodes.push(s('line', { x1: MARGIN.left, x2: g.width - MARGIN.right, y1: bottom, y2: bottom,
      class: 'axis' }));
    nodes.push(s('text', { x: MARGIN.left + g.innerW / 2, y: g.height - 4, 'text-anchor': 'middle',
      class: 'axis-label' }, this.xLabel));
    nodes.push(s('text', { x: 12, y: MARGIN.top + g.innerH / 2, 'text-anchor': 'middle',
      transform: `rotate(-90 12 ${MARGIN.top + g.innerH / 2})`, class: 'axis-label' },
    this.yLabel));
    return nodes;
  }

  renderLegend() {
    this.legend.replaceChildren(...this.series.map((one) => h('li', {},
      h('span', { class: ['swatch', `series-${one.color ?? 0}`, one.kind === 'raw' ? 'raw' : 'line'],
        'aria-hidden': 'true' }),
      one.label)));
  }

  // The longest series sets the steps the keyboard moves by.
  reference() {
    return this.series.reduce((best, one) => (one.xs.length > (best?.xs.length ?? 0) ? one : best),
      null);
  }

  onPointer(event) {
    const g = this.geometry;
    if (!g || !g.filled.length) return;
    const box = this.svg.getBoundingClientRect();
    const px = ((event.clientX - box.left) / box.width) * g.width;
    const x = g.x0 + ((px - MARGIN.left) / g.innerW) * (g.x1 - g.x0);
    this.moveCursor(Math.min(g.x1, Math.max(g.x0, x)));
  }

  onKey(event) {
    const ref = this.reference();
    if (!ref?.xs.length) return;
    const last = ref.xs.length - 1;
    let i = this.cursorX === null ? last : nearest(ref.xs, this.cursorX);
    const big = Math.max(1, Math.round(ref.xs.length / 10));
    const moves = {
      ArrowLeft: -1, ArrowDown: -1, ArrowRight: 1, ArrowUp: 1, PageDown: -big, PageUp: big,
    };
    if (event.key in moves) i += this.cursorX === null ? 0 : moves[event.key];
    else if (event.key === 'Home') i = 0;
    else if (event.key === 'End') i = last;
    else if (event.key === 'Escape') return this.moveCursor(null);
    else return undefined;
    event.preventDefault();
    return this.moveCursor(ref.xs[Math.min(last, Math.max(0, i))]);
  }

  moveCursor(x) {
    this.cursorX = x;
    this.drawCursor();
  }

  // The value of each series at the cursor: [{series, x, y}].
  valuesAt(x) {
    const found = [];
    for (const one of this.series) {
      if (!one.xs.length || x < one.xs[0] - 0.5 || x > one.xs[one.xs.length - 1] + 0.5) continue;
      const i = nearest(one.xs, x);
      found.push({ series: one, x: one.xs[i], y: one.ys[i] });
    }
    return found;
  }

  drawCursor() {
    const g = this.geometry;
    if (!this.cursorLayer || !g) return;
    if (this.cursorX === null) {
      this.cursorLayer.replaceChildren();
      this.readout.textContent = this.summary();
      return;
    }
    const values = this.valuesAt(this.cursorX);
    if (!values.length) return;
    const x = values[0].x;
    const lines = [`${this.xLabel} ${fmt(x)}`, ...values.map((v) => `${v.series.label}: ${fmt(v.y)}`)];
    const nodes = [s('line', { x1: g.sx(x), x2: g.sx(x), y1: MARGIN.top, y2: MARGIN.top + g.innerH,
      class: 'cursor-line' })];
    for (const v of values) {
      nodes.push(s('circle', { cx: g.sx(v.x), cy: g.sy(v.y), r: 3.5,
        class: ['cursor-dot', `series-${v.series.color ?? 0}`] }));
    }
    nodes.push(this.tooltip(g, g.sx(x), lines));
    this.cursorLayer.replaceChildren(...nodes);
    this.readout.textContent = lines.join(' · ');
  }

  tooltip(g, px, lines) {
    const width = Math.max(...lines.map((line) => line.length)) * 7 + 16;
    const height = lines.length * TOOLTIP_LINE + 8;
    const left = px + 12 + width > g.width - MARGIN.right ? px - 12 - width : px + 12;
    const top = MARGIN.top + 4;
    return s('g', { class: 'tooltip', transform: `translate(${Math.max(0, left)} ${top})` },
      s('rect', { width, height, rx: 4 }),
      lines.map((line, i) => s('text', { x: 8, y: 16 + i * TOOLTIP_LINE,
        class: i ? 'tooltip-value' : 'tooltip-title' }, line)));
  }

  summary() {
    const parts = this.series.filter((one) => one.xs.length).map((one) => {
      const n = one.xs.length;
      return `${one.label}: ${n} points, last ${fmt(one.ys[n - 1])} at ${this.xLabel.toLowerCase()} ${fmt(one.xs[n - 1])}`;
    });
    return parts.length ? parts.join('; ') : this.emptyText;
  }
}
