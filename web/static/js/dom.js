// Small helpers to build the page from elements and text nodes. Server text only ever
// enters the page as text nodes (textContent), never as HTML.

const SVG_NS = 'http://www.w3.org/2000/svg';

function apply(el, attrs) {
  for (const [key, value] of Object.entries(attrs ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') {
      el.addEventListener(key.slice(2).toLowerCase(), value);
    } else if (key === 'class') {
      el.setAttribute('class', Array.isArray(value) ? value.filter(Boolean).join(' ') : value);
    } else if (key === 'dataset') {
      Object.assign(el.dataset, value);
    } else if (key === 'value' || key === 'checked' || key === 'selected') {
      el[key] = value;
    } else {
      el.setAttribute(key, value === true ? '' : String(value));
    }
  }
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

// h('button', {type: 'button', onClick: fn}, 'Stop') -> <button type="button">Stop</button>
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  apply(el, attrs);
  append(el, children);
  return el;
}

export function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  apply(el, attrs);
  append(el, children);
  return el;
}

let uniqueCounter = 0;
export const uid = (prefix) => `${prefix}-${++uniqueCounter}`;

const numberFormat = new Intl.NumberFormat(undefined, { maximumSignificantDigits: 4 });
const integerFormat = new Intl.NumberFormat(undefined, { maximumFractionDigits: 0 });

export function fmt(value) {
  if (value === null || value === undefined || Number.isNaN(value)) return '–';
  if (typeof value !== 'number') return String(value);
  if (Number.isInteger(value) && Math.abs(value) >= 1000) return integerFormat.format(value);
  return numberFormat.format(value);
}

export function fmtTime(iso) {
  if (!iso) return '–';
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : date.toLocaleString();
}

export const STATUSES = ['queued', 'running', 'completed', 'stopping', 'stopped', 'failed'];
export const ACTIVE = new Set(['queued', 'running', 'stopping']);
export const ALGORITHMS = ['dqn', 'ppo', 'sac'];

export function badge(status) {
  return h('span', { class: ['badge', `badge-${status}`] }, status);
}

// A paragraph that says what went wrong; role=alert so screen readers announce it.
export function errorBox(text) {
  return h('p', { class: 'error', role: 'alert' }, text);
}

export function runTitle(model) {
  return model.name ? `#${model.id} ${model.name}` : `Run #${model.id}`;
}
