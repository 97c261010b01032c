// Running the trained policy: POST /testmodel/ from a start observation, shown as a chart
// of the observation over the steps and as a table; and GET /models/<id>/replay.gif.

import { describe, getBlob, post } from '../api.js';
import { LineChart } from '../chart.js';
import { errorBox, fmt, h } from '../dom.js';
import { clearErrors, field, formError, showErrors } from '../forms.js';

const TABLE_ROWS = 300;

// "0, 0.1 0.05" or "[0, 0.1, 0.05]" -> [0, 0.1, 0.05]; anything else goes to the service
// as typed, which answers with what it expected.
export function parseObservation(text) {
  const trimmed = text.trim();
  if (!trimmed) return undefined;
  const parts = trimmed.replace(/^\[|\]$/g, '').split(/[\s,]+/).filter(Boolean);
  const numbers = parts.map(Number);
  return numbers.every(Number.isFinite) ? numbers : trimmed;
}

function numbers(list) {
  return list.map((v) => fmt(v)).join(', ');
}

function trajectoryTable(result) {
  const shown = Math.min(result.steps, TABLE_ROWS);
  const rows = [];
  for (let i = 0; i < shown; i += 1) {
    rows.push(h('tr', {},
      h('th', { scope: 'row' }, String(i + 1)),
      h('td', { class: 'mono' }, numbers(result.observation[i] ?? [])),
      h('td', { class: 'mono' }, numbers(result.action[i] ?? [])),
      h('td', {}, fmt(result.rewards[i]))));
  }
  return h('div', { class: 'table-wrap scroll' },
    h('table', { class: 'trajectory' },
      h('caption', {}, result.steps > shown
        ? `The first ${shown} of ${result.steps} steps` : `All ${result.steps} steps`),
      h('thead', {}, h('tr', {}, ['Step', 'Observation', 'Action', 'Reward'].map(
        (text) => h('th', { scope: 'col' }, text)))),
      h('tbody', {}, rows)));
}

function showResult(output, result) {
  output.replaceChildren(h('p', { class: 'result-summary', role: 'status' },
    `Total reward ${fmt(result.total_reward)} over ${result.steps} steps`,
    result.terminated ? ' (the episode terminated)' : result.truncated ? ' (truncated)' : '',
    `; checkpoint version ${result.checkpoint_version}.`));
  const dims = result.observation[0]?.length ?? 0;
  const xs = result.observation.map((_, i) => i + 1);
  const chart = new LineChart(output, {
    label: 'Observation at each step of the episode',
    xLabel: 'Step',
    yLabel: 'Value',
    height: 240,
  });
  chart.setSeries(Array.from({ length: dims }, (_, d) => ({
    label: `observation[${d}]`, xs, ys: result.observation.map((o) => o[d]), kind: 'line',
    color: d % 8,
  })));
  output.append(trajectoryTable(result));
  return chart;
}

export function inferencePanel(model, cleanups) {
  const observation = field({ name: 'observation', label: 'Start observation',
    hint: 'Numbers separated by commas, e.g. 0, 0, 0.05, 0 for CartPole. Empty: the reset with the run\'s seed.',
    attrs: { class: 'mono', autocomplete: 'off', spellcheck: 'false' } });
  const steps = field({ name: 'steps', label: 'Steps', hint: 'At most 10,000.',
    attrs: { inputmode: 'numeric', value: '100', autocomplete: 'off' } });
  const deterministic = h('input', { type: 'checkbox', id: `det-${model.id}`, name: 'deterministic',
    checked: true });
  const submit = h('button', { type: 'submit' }, 'Run the policy');
  const output = h('div', { class: 'inference-output' });
  const form = h('form', { class: 'inline-form', novalidate: true },
    formError(), observation.wrapper, steps.wrapper,
    h('div', { class: 'field check' }, deterministic,
      h('label', { for: deterministic.id }, 'Greedy actions')),
    h('div', { class: 'actions' }, submit));
  let chart = null;
  cleanups.push(() => chart?.destroy());

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(form);
    submit.disabled = true;
    submit.textContent = 'Running…';
    const stepsText = steps.control.value.trim();
    const body = {
      model_id: model.id,
      deterministic: deterministic.checked,
      observation: parseObservation(observation.control.value),
      steps: stepsText === '' ? undefined : (Number.isFinite(Number(stepsText)) ? Number(stepsText) : stepsText),
    };
    try {
      const result = await post('/testmodel/', body);
      chart?.destroy();
      chart = showResult(output, result);
    } catch (err) {
      showErrors(form, err);
    } finally {
      submit.disabled = false;
      submit.textContent = 'Run the policy';
    }
  });
  return h('section', { class: 'panel wide', 'aria-labelledby': 'inference-h' },
    h('h2', { id: 'inference-h' }, 'Inference'),
    h('p', { class: 'muted' }, 'Plays the newest checkpoint of the policy from a start state.'),
    form, output);
}

export function replayPanel(model, cleanups) {
  const episodes = field({ name: 'episodes', label: 'Episodes', control: 'select',
    options: [1, 2, 3, 4, 5].map((n) => [String(n), String(n)]) });
  const button = h('button', { type: 'submit' }, 'Show the replay');
  const output = h('div', { class: 'replay-output', 'aria-live': 'polite' });
  const form = h('form', { class: 'inline-form' }, episodes.wrapper,
    h('div', { class: 'actions' }, button));
  let url = null;
  const release = () => url && URL.revokeObjectURL(url);
  cleanups.push(release);

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    button.disabled = true;
    output.replaceChildren(h('p', { class: 'muted' }, 'Rendering greedy episodes…'));
    try {
      const blob = await getBlob(`/models/${model.id}/replay.gif`, { episodes: episodes.control.value });
      release();
      url = URL.createObjectURL(blob);
      output.replaceChildren(h('img', { src: url, class: 'replay',
        alt: `Greedy episodes of ${model.env_id} played by the policy of run ${model.id}` }));
    } catch (err) {
      output.replaceChildren(errorBox(describe(err)));
    } finally {
      button.disabled = false;
    }
  });
  return h('section', { class: 'panel', 'aria-labelledby': 'replay-h' },
    h('h2', { id: 'replay-h' }, 'Replay'),
    h('p', { class: 'muted' }, 'Where the environment renders (classic control, for instance).'),
    form, output);
}
